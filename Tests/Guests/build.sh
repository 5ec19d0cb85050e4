#!/usr/bin/env bash
# Builds the test guests: the test kernel (PVH and multiboot variants) and the boot sector from
# source with the host toolchain (gcc, binutils), and the Linux guest from
# Debian packages (linux/build.sh, downloads on its first run).
# Usage: Tests/Guests/build.sh OUTDIR [native|linux|all]
#   native (the default) -> OUTDIR/uni-test-kernel.elf (PVH note), OUTDIR/boot.img, OUTDIR/diskloop.img,
#                           OUTDIR/uni-test-kernel-multiboot.elf (the same kernel with a multiboot header instead)
#   linux                -> OUTDIR/linux.img
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
which=${2:-native}
mkdir -p "$out"
if [ "$which" = all ] || [ "$which" = native ]; then
  cflags="-m32 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -Wall -Wextra -fno-asynchronous-unwind-tables"
  gcc $cflags -c "$here/kernel/entry.S" -o "$out/entry.o"
  gcc $cflags -c "$here/kernel/kernel.c" -o "$out/kernel.o"
  ld -m elf_i386 --no-warn-rwx-segments -n -T "$here/kernel/link.ld" -o "$out/uni-test-kernel.elf.tmp" "$out/entry.o" "$out/kernel.o"
  mv "$out/uni-test-kernel.elf.tmp" "$out/uni-test-kernel.elf"
  gcc $cflags -DUNI_MULTIBOOT -c "$here/kernel/entry.S" -o "$out/entry-multiboot.o"
  ld -m elf_i386 --no-warn-rwx-segments -n -T "$here/kernel/link.ld" -o "$out/uni-test-kernel-multiboot.elf.tmp" "$out/entry-multiboot.o" "$out/kernel.o"
  mv "$out/uni-test-kernel-multiboot.elf.tmp" "$out/uni-test-kernel-multiboot.elf"
  gcc -m32 -c "$here/bootsector/boot.S" -o "$out/boot.o"
  ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$out/boot.img.tmp" "$out/boot.o"
  mv "$out/boot.img.tmp" "$out/boot.img"
  gcc -m32 -c "$here/bootsector/diskloop.S" -o "$out/diskloop.o"
  ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$out/diskloop.img.tmp" "$out/diskloop.o"
  mv "$out/diskloop.img.tmp" "$out/diskloop.img"
  rm -f "$out"/*.o
fi
if [ "$which" = all ] || [ "$which" = linux ]; then
  "$here/linux/build.sh" "$out"
fi
