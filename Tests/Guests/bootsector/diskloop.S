/* A bootable disk image for the throttling tests: the BIOS loads it at
 * 0x7c00; it prints a line to COM1, then reads its own first sector
 * through the BIOS (int 13h, one ATA read each) in a loop forever, so the
 * boot disk's read operations per second are what QEMU's throttling lets
 * through. The image is padded to 64 KiB. */
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    mov %dl, drive
    mov $msg, %si
1:  lodsb
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    outb %al, %dx
    jmp 1b
2:  mov $0x0201, %ax        /* read 1 sector */
    mov $0x0001, %cx        /* cylinder 0, sector 1 */
    xor %dh, %dh            /* head 0 */
    mov drive, %dl
    mov $0x8000, %bx        /* into 0000:8000 */
    int $0x13
    jmp 2b
drive:
    .byte 0x80
msg:
    .asciz "uni-disk-guest: reading the disk in a loop\r\n"
    .org 510
    .byte 0x55, 0xaa
    .fill 65536 - 512, 1, 0

    .section .note.GNU-stack,"",@progbits
