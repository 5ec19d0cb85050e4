#!/usr/bin/env bash
# Builds the test guests from source with the host toolchain (gcc, binutils).
# Usage: Tests/Guests/build.sh OUTDIR   -> OUTDIR/uni-test-kernel.elf, OUTDIR/boot.img
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
cflags="-m32 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -Wall -Wextra -fno-asynchronous-unwind-tables"
gcc $cflags -c "$here/kernel/entry.S" -o "$out/entry.o"
gcc $cflags -c "$here/kernel/kernel.c" -o "$out/kernel.o"
ld -m elf_i386 --no-warn-rwx-segments -n -T "$here/kernel/link.ld" -o "$out/uni-test-kernel.elf.tmp" "$out/entry.o" "$out/kernel.o"
mv "$out/uni-test-kernel.elf.tmp" "$out/uni-test-kernel.elf"
gcc -m32 -c "$here/bootsector/boot.S" -o "$out/boot.o"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$out/boot.img.tmp" "$out/boot.o"
mv "$out/boot.img.tmp" "$out/boot.img"
rm -f "$out"/*.o
