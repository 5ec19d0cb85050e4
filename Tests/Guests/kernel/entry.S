/* Entry point of the Uni test kernel. QEMU's x86 -kernel loader prefers a
 * multiboot header over the PVH note, so the kernel carries one of the two:
 * the PVH note by default (uni-test-kernel.elf), the multiboot header when
 * built with -DUNI_MULTIBOOT (uni-test-kernel-multiboot.elf). microvm and pc
 * boot both in 32-bit protected mode, paging off: under PVH with %ebx
 * pointing at struct hvm_start_info, under multiboot with the magic in %eax
 * and %ebx pointing at struct multiboot_info (docs/guests.md, "Boot"). */

#ifdef UNI_MULTIBOOT
    /* Multiboot (version 1) header, in the first 8 KiB of the file
     * (link.ld puts .multiboot first): magic, flags (bit 0: page-aligned
     * modules, bit 1: memory map), checksum. QEMU loads the ELF's segments. */
    .section .multiboot, "a"
    .align 4
    .long 0x1BADB002
    .long 0x00000003
    .long -(0x1BADB002 + 0x00000003)
#else
    /* XEN_ELFNOTE_PHYS32_ENTRY (18): QEMU's PVH loader jumps here. */
    .section .note.Xen, "a"
    .align 4
    .long 4          /* name size */
    .long 4          /* desc size */
    .long 18         /* type */
    .asciz "Xen"
    .long _start
#endif

    .section .text
    .code32
    .globl _start
_start:
    cli
    cld
    lea  stack_top, %esp
    push %ebx        /* boot info pointer */
    push %eax        /* multiboot magic, or garbage under PVH */
    call kernel_main
1:  cli
    hlt
    jmp 1b

    /* Every interrupt lands here: acknowledge the PIC and count timer ticks. */
    .globl irq_stub
irq_stub:
    push %eax
    incl ticks
    mov  $0x20, %al
    outb %al, $0x20
    pop  %eax
    iret

    .section .bss
    .align 16
    .space 16384
stack_top:

    .section .note.GNU-stack,"",@progbits
