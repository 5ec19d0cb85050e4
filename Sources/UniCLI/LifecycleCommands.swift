import ArgumentParser
import UniCore

// `uni start`, `stop`, `restart`, `kill`, `wait`, `update` and `rm`: one
// API call per VM named, each failure reported, then the exit code.

struct Start: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start created or stopped VMs.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]
    func run() throws { try forEach(vms) { print(try global.client.start($0).name) } }
}

struct Update: UniSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Change VMs' CPU weight, memory ceiling and disk limits, live and for their next start.",
        discussion: "A running VM takes the new limits at once; a stopped one at its next start. 0 removes a memory or disk limit."
    )
    @OptionGroup var global: GlobalOptions
    @OptionGroup var limits: ResourceOptions
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]
    func run() throws {
        let update = try limits.update()
        guard !update.isEmpty else {
            throw UniError.invalid("nothing to update: give --cpu-shares, --memory-max, --disk-iops or --disk-bps")
        }
        try forEach(vms) { print(try global.client.update($0, update).name) }
    }
}

struct Restart: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Stop VMs (if running) and start them again.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long], parsing: .unconditional, help: "Wait this long for the guest before killing (e.g. 10s); default: unid's --stop-timeout.")
    var timeout: String?
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]
    func run() throws {
        let timeout = try self.timeout.map { try DurationParser.parse($0, flag: "--timeout") }
        let client = global.client
        try forEach(vms) { reference in
            _ = try client.stop(reference, timeout: timeout)
            print(try client.start(reference).name)
        }
    }
}

struct Wait: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Wait until VMs stop; print each one's exit code.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]
    func run() throws {
        let client = global.client
        try forEach(vms) { reference in
            let vm = try client.wait(reference)
            // A VM that never ran has no exit code; docker prints 0 for a created container that was removed.
            print(vm.exitCode.map(String.init) ?? "-")
        }
    }
}

struct Stop: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop VMs: ACPI powerdown, then kill after the timeout.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long], parsing: .unconditional, help: "Wait this long before killing (e.g. 10s); default: unid's --stop-timeout.")
    var timeout: String?
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]
    func run() throws {
        let timeout = try self.timeout.map { try DurationParser.parse($0, flag: "--timeout") }
        try forEach(vms) { print(try global.client.stop($0, timeout: timeout).name) }
    }
}

struct Kill: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Kill VMs at once (SIGKILL to QEMU).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]
    func run() throws { try forEach(vms) { print(try global.client.kill($0).name) } }
}

struct Remove: UniSubcommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove VMs (-f kills running ones first).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Kill a running VM before removing it.") var force = false
    @Argument(help: "VM names, ids or id prefixes.") var vms: [String]
    func run() throws {
        try forEach(vms) {
            try global.client.remove($0, force: force)
            print($0)
        }
    }
}
