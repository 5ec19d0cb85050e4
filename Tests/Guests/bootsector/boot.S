/* A one-sector bootable disk image for the Uni tests: the BIOS loads it at
 * 0x7c00; it prints a line to COM1 and halts forever (it ignores ACPI
 * powerdown, so stopping it exercises the forced path). */
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov $msg, %si
1:  lodsb
    test %al, %al
    jz 3f
    mov $0x3f8, %dx
    outb %al, %dx
    jmp 1b
3:  hlt
    jmp 3b
msg:
    .asciz "uni-disk-guest: booted from disk\r\n"
    .org 510
    .byte 0x55, 0xaa

    .section .note.GNU-stack,"",@progbits
