/* Entry point of the Uni test kernel. QEMU's x86 -kernel loader prefers a
 * multiboot header over the PVH note, so the kernel carries only the PVH
 * note: microvm and pc both boot it in 32-bit protected mode, paging off,
 * with %ebx pointing at struct hvm_start_info. */

    /* XEN_ELFNOTE_PHYS32_ENTRY (18): QEMU's PVH loader jumps here. */
    .section .note.Xen, "a"
    .align 4
    .long 4          /* name size */
    .long 4          /* desc size */
    .long 18         /* type */
    .asciz "Xen"
    .long _start

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
