/* Uni test kernel: a freestanding guest for integration tests.
 *
 * Prints to COM1, echoes its command line, and acts on switches in it:
 *   lines=N       print N numbered lines ("line 1".."line N")
 *   mem=N         touch N MiB of memory above 4 MiB
 *   burn          spin forever (CPU load for stats tests)
 *   exit=N        leave through isa-debug-exit with status N
 *   ignore-powerdown  keep running when the host asks for ACPI powerdown
 *   env           print the fw_cfg file opt/uni/env (Uni's guest environment)
 * Otherwise it idles (hlt, woken at 100 Hz by the PIT) and exits with
 * status 0 when microvm's ACPI GED reports a power-button event.
 */
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long long u64;

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
#define PVH_START_MAGIC 0x336ec578u
#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4
#define MICROVM_GED_EVT_SEL 0xfea00000u
#define GED_POWER_DOWN_EVENT 0x2u  /* ACPI_GED_PWR_DOWN_EVT */
#define LAPIC_BASE 0xfee00000u

volatile u32 ticks;
extern void irq_stub(void);

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void putc(char c) {
    while (!(inb(COM1 + 5) & 0x20)) {}
    outb(COM1, (u8)c);
}
static void puts(const char *s) { while (*s) { if (*s == '\n') putc('\r'); putc(*s++); } }
static void putu(u32 v) {
    char buf[12]; int i = 0;
    do { buf[i++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (i) putc(buf[--i]);
}

static void guest_exit(u32 status) {
    puts("uni-guest: exit "); putu(status); puts("\n");
    outl(DEBUG_EXIT_PORT, status);
    for (;;) __asm__ volatile("cli; hlt");
}

/* Finds "key" as a whole word in the command line; returns the text after
 * "key=" (or after "key" when it stands alone), or 0. */
static const char *find_switch(const char *cmdline, const char *key) {
    const char *p = cmdline;
    while (p && *p) {
        while (*p == ' ') p++;
        const char *k = key, *q = p;
        while (*k && *q == *k) { k++; q++; }
        if (!*k && (*q == '=' || *q == ' ' || *q == 0)) return *q == '=' ? q + 1 : q;
        while (*p && *p != ' ') p++;
    }
    return 0;
}
static u32 parse_u32(const char *s) { u32 v = 0; while (s && *s >= '0' && *s <= '9') v = v * 10 + (u32)(*s++ - '0'); return v; }

/* QEMU fw_cfg over I/O ports: select an item, then read its bytes. */
#define FW_CFG_SELECTOR 0x510
#define FW_CFG_DATA 0x511
#define FW_CFG_FILE_DIR 0x19
static u32 fw_cfg_be32(void) { u32 v = 0; for (int i = 0; i < 4; i++) v = (v << 8) | inb(FW_CFG_DATA); return v; }
static u16 fw_cfg_be16(void) { u16 hi = inb(FW_CFG_DATA); return (u16)((hi << 8) | inb(FW_CFG_DATA)); }
static int streq(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return *a == *b; }

static void print_env(void) {
    outw(FW_CFG_SELECTOR, FW_CFG_FILE_DIR);
    u32 count = fw_cfg_be32();
    for (u32 i = 0; i < count; i++) {
        u32 size = fw_cfg_be32();
        u16 select = fw_cfg_be16();
        fw_cfg_be16();
        char name[56];
        for (int j = 0; j < 56; j++) name[j] = (char)inb(FW_CFG_DATA);
        name[55] = 0;
        if (streq(name, "opt/uni/env")) {
            outw(FW_CFG_SELECTOR, select);
            puts("uni-guest: env begin\n");
            for (u32 j = 0; j < size; j++) { char c = (char)inb(FW_CFG_DATA); if (c == '\n') putc('\r'); putc(c); }
            puts("uni-guest: env end\n");
            return;
        }
    }
    puts("uni-guest: no env\n");
}

struct idt_entry { u16 off_lo, sel; u8 zero, flags; u16 off_hi; } __attribute__((packed));
struct idt_ptr { u16 limit; u32 base; } __attribute__((packed));
static struct idt_entry idt[64];

/* 100 Hz timer so the idle loop can hlt instead of spinning the host CPU. */
static void start_timer(void) {
    u16 cs; __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (int i = 0; i < 64; i++) {
        u32 h = (u32)irq_stub;
        idt[i] = (struct idt_entry){ (u16)h, cs, 0, 0x8e, (u16)(h >> 16) };
    }
    struct idt_ptr p = { sizeof(idt) - 1, (u32)idt };
    __asm__ volatile("lidt %0" : : "m"(p));
    outb(0x20, 0x11); outb(0xa0, 0x11);   /* remap PICs to 0x20/0x28 */
    outb(0x21, 0x20); outb(0xa1, 0x28);
    outb(0x21, 0x04); outb(0xa1, 0x02);
    outb(0x21, 0x01); outb(0xa1, 0x01);
    outb(0x21, 0xfe); outb(0xa1, 0xff);   /* only IRQ0 */
    /* microvm has no BIOS to put the local APIC in virtual-wire mode, so
     * enable it (spurious vector 0x3f) and route LINT0 as ExtINT ourselves. */
    *(volatile u32 *)(LAPIC_BASE + 0xf0) = 0x13f;
    *(volatile u32 *)(LAPIC_BASE + 0x350) = 0x700;
    outb(0x43, 0x36); outb(0x40, 11932 & 0xff); outb(0x40, 11932 >> 8);
    __asm__ volatile("sti");
}

static int powerdown_requested(void) {
    return (*(volatile u32 *)MICROVM_GED_EVT_SEL & GED_POWER_DOWN_EVENT) != 0;
}

void kernel_main(u32 magic, u32 info) {
    const char *cmdline = "";
    /* QEMU's PVH option ROM also leaves the multiboot magic in %eax, so the
     * start_info magic is checked first. */
    if (*(u32 *)info == PVH_START_MAGIC) {
        u32 cmd = (u32)*(u64 *)(info + 24);
        if (cmd) cmdline = (const char *)cmd;
        puts("uni-guest: booted (pvh)\n");
    } else if (magic == MULTIBOOT_BOOTLOADER_MAGIC) {
        u32 flags = *(u32 *)info;
        if (flags & 4) cmdline = (const char *)*(u32 *)(info + 16);
        puts("uni-guest: booted (multiboot)\n");
    } else {
        puts("uni-guest: booted (unknown loader)\n");
    }
    puts("uni-guest: cmdline="); puts(cmdline); puts("\n");

    const char *v;
    if ((v = find_switch(cmdline, "lines"))) {
        u32 n = parse_u32(v);
        for (u32 i = 1; i <= n; i++) { puts("line "); putu(i); puts("\n"); }
    }
    if (find_switch(cmdline, "env")) print_env();
    if ((v = find_switch(cmdline, "mem"))) {
        u32 mib = parse_u32(v);
        volatile u8 *base = (volatile u8 *)(4u << 20);
        for (u32 off = 0; off < (mib << 20); off += 4096) base[off] = (u8)off | 1;
        puts("uni-guest: touched "); putu(mib); puts(" MiB\n");
    }
    if ((v = find_switch(cmdline, "exit"))) guest_exit(parse_u32(v));
    if (find_switch(cmdline, "burn")) {
        puts("uni-guest: burning cpu\n");
        for (;;) __asm__ volatile("" ::: "memory");
    }
    int ignore_powerdown = find_switch(cmdline, "ignore-powerdown") != 0;
    puts("uni-guest: idle\n");
    start_timer();
    for (;;) {
        __asm__ volatile("hlt");
        if (!ignore_powerdown && powerdown_requested()) {
            puts("uni-guest: powerdown requested\n");
            guest_exit(0);
        }
    }
}
