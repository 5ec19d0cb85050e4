#!/usr/bin/env bash
# Builds the Linux test guest from Debian packages, without installing them
# (apt-get download + dpkg-deb -x): the kernel of linux-image-cloud-amd64
# and busybox-static's busybox in a gzip'd newc cpio initramfs whose /init
# is Tests/Guests/linux/init, on a FAT disk image that syslinux boots. A disk
# image, not -kernel: Uni runs kernel images without an initramfs, and this
# kernel needs one (its virtio drivers are modules).
# Needs apt-get, dpkg-deb, cpio, gzip, xz (for compressed modules). The .debs
# stay in OUTDIR/linux-debs: a rerun downloads nothing.
# Usage: Tests/Guests/linux/build.sh OUTDIR -> OUTDIR/linux.img
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
debs=$out/linux-debs
mkdir -p "$debs"

fail() { echo "linux guest: $*" >&2; exit 1; }
for tool in apt-get apt-cache dpkg-deb cpio gzip xz; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing (scripts/setup.sh installs the packages)"
done

cached() { ls "$debs"/$1_*.deb 2>/dev/null | sort | tail -n 1 || true; }
# What the image was made from: the .debs, /init and this script.
stamp() { echo "$(basename "$(cached "$1")") $(basename "$(cached busybox-static)") $(cksum < "$here/init") $(cksum < "$0")"; }
up_to_date() { [ -f "$out/linux.img" ] && [ "$(cat "$out/linux.img.stamp" 2>/dev/null)" = "$(stamp "$1")" ]; }
# An image made from the cached .debs needs no apt query (4 s on a busy
# machine); a newer kernel is fetched once OUTDIR/linux-debs is emptied.
if [ -n "$(cached 'linux-image-*-cloud-amd64')" ] && up_to_date 'linux-image-*-cloud-amd64'; then
  exit 0
fi

# The metapackage names the current kernel package, which changes with every
# kernel update; no answer means the package lists were never fetched.
kernel_package() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1; }
package=$(kernel_package)
if [ -z "$package" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  package=$(kernel_package)
fi
[ -n "$package" ] || fail "apt-cache cannot resolve linux-image-cloud-amd64 (run 'apt-get update' as root)"
wanted=()
for name in "$package" busybox-static syslinux mtools; do
  [ -n "$(cached "$name")" ] || wanted+=("$name")
done
if [ ${#wanted[@]} -gt 0 ]; then
  # As root, apt downloads as the _apt user unless told otherwise, and that
  # user may not write here.
  (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "${wanted[@]}") >"$debs/download.log" 2>&1 \
    || fail "apt-get download ${wanted[*]} failed: $(tail -n 3 "$debs/download.log")"
fi
up_to_date "$package" && exit 0
kernel_deb=$(cached "$package")
busybox_deb=$(cached busybox-static)

work=$(mktemp -d "$out/linux-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
for deb in "$kernel_deb" "$busybox_deb" "$(cached syslinux)" "$(cached mtools)"; do
  dpkg-deb -x "$deb" "$work/pkg"
done
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,www,lib/modules}
cp "$work/pkg/bin/busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init" "$root/bin/busybox"
for module in virtio_ring virtio virtio_mmio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  file=$(find "$work/pkg/lib/modules" \( -name "$module.ko" -o -name "$module.ko.xz" \) | head -n 1)
  [ -n "$file" ] || fail "module $module not found in $(basename "$kernel_deb")"
  case "$file" in
    *.xz) xz -dc "$file" > "$root/lib/modules/$module.ko" ;;
    *) cp "$file" "$root/lib/modules/$module.ko" ;;
  esac
done
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) > "$work/initrd.gz"

# A FAT disk with no partition table; syslinux writes its boot sector and
# ldlinux.sys (through mtools' mcopy/mattrib, found on PATH).
cat > "$work/syslinux.cfg" <<'CFG'
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0
CFG
export PATH="$work/pkg/usr/bin:$PATH" MTOOLS_SKIP_CHECK=1
image=$work/linux.img
truncate -s 24M "$image"
mformat -i "$image" -v UNILINUX -h 64 -s 32 -T 49152 :: >/dev/null
mcopy -i "$image" "$(ls "$work"/pkg/boot/vmlinuz-* | head -n 1)" ::vmlinuz
mcopy -i "$image" "$work/initrd.gz" ::initrd.gz
mcopy -i "$image" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --install "$image"
mv "$image" "$out/linux.img"
stamp "$package" > "$out/linux.img.stamp"
