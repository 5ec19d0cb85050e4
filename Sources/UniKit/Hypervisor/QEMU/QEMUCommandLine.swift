import Foundation

/// Builds the `qemu-system-x86_64` arguments for a VM.
///
/// Kept free of I/O so tests can check the exact command line. The choices
/// are documented in `docs/architecture.md` ("The QEMU command line").
///
/// Every caller-given value either goes through ``VMConfig/validated()``
/// first (name, ports, addresses, sizes, command line, image path) or is
/// escaped where QEMU parses it as an option string (`key=value,...`, where a
/// comma starts the next option unless doubled). `-kernel` and `-append`
/// take plain values: QEMU stores them as given
/// (`qdict_put_str(machine_opts_dict, "kernel", optarg)` in QEMU 7.2's
/// `vl.c`), so they are not escaped; doubling their commas would change them.
public struct QEMUCommandLine: Sendable {
    /// The VM to run.
    public var vm: VM
    /// The VM's runtime folder.
    public var directory: String
    /// The accelerator.
    public var accelerator: Accelerator
    /// Whether the network traffic is dumped into the FIFOs that unid reads
    /// to count it (``networkDumpArguments``).
    public var countsNetworkTraffic: Bool

    /// Creates a builder.
    public init(vm: VM, directory: String, accelerator: Accelerator, countsNetworkTraffic: Bool = true) {
        self.vm = vm
        self.directory = directory
        self.accelerator = accelerator
        self.countsNetworkTraffic = countsNetworkTraffic
    }

    /// The QMP control socket.
    public var qmpSocketPath: String { VMDirectory(path: directory).qmpSocketPath }
    /// The 0600 file handed to the guest through fw_cfg as `opt/uni/env`.
    public var environmentFilePath: String { VMDirectory(path: directory).environmentFilePath }

    /// The name the guest sees the environment under (`/sys/firmware/qemu_fw_cfg/by_name/opt/uni/env/raw`).
    public static let environmentFirmwareName = "opt/uni/env"
    /// The `-drive` id of a disk image VM's boot disk (QMP's `device` in `query-blockstats`).
    public static let bootDriveID = "disk0"
    /// The qdev id of the boot disk's device: QMP `block_set_io_throttle` names it.
    public static let bootDeviceID = "bootdisk"
    /// The I/O port of the `isa-debug-exit` device: a guest that writes N there
    /// makes QEMU exit with status 2N+1, recorded as exit code N.
    public static let debugExitPort = 0xf4

    /// The arguments, without argv[0].
    public var arguments: [String] {
        let config = vm.config
        var args = [
            "-name", "guest=\(QEMUCommandLine.escape(vm.name)),debug-threads=on",
            "-machine", vm.machine,
            "-accel", accelerator.rawValue,
            "-m", "\(config.effectiveMemory.bytes >> 20)M",
            "-smp", "\(config.effectiveCPUs)",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-chardev", "stdio,id=con0,signal=off",
            "-serial", "chardev:con0",
            "-qmp", "unix:\(QEMUCommandLine.escape(qmpSocketPath)),server=on,wait=off",
            "-device", "isa-debug-exit,iobase=0x\(String(QEMUCommandLine.debugExitPort, radix: 16)),iosize=0x04",
        ]
        var netdev = "user,id=net0"
        // The forwards below still reach an isolated guest (QEMU's manual:
        // restrict "does not affect any explicitly set forwarding rules").
        if config.network == .isolated { netdev += ",restrict=on" }
        // No escaping can make a `hostfwd=` rule safe (its own syntax uses
        // `:` and `-`): its address and ports are refused unless they are a
        // dotted IPv4 address and numbers 1-65535 (PortMapping.validate()).
        for port in config.ports {
            netdev += ",hostfwd=\(port.transportProtocol.rawValue):\(port.hostAddress ?? ""):\(port.hostPort)-:\(port.guestPort)"
        }
        args += ["-netdev", netdev, "-device", (vm.machine == "microvm" ? "virtio-net-device" : "virtio-net-pci") + ",netdev=net0"]
        if countsNetworkTraffic { args += networkDumpArguments }
        switch vm.imageKind {
        case .kernel:
            // Plain values, not option strings: no escaping (see the type's comment).
            args += ["-kernel", vm.bootImagePath]
            if let initrd = vm.image?.initrdPath { args += ["-initrd", initrd] }
            if let cmdline = config.kernelCommandLine, !cmdline.isEmpty { args += ["-append", cmdline] }
        case .disk:
            // snapshot=on: the image stays pristine, like a container image;
            // guest writes go to a temporary overlay dropped at exit.
            args += ["-drive", "file=\(QEMUCommandLine.escape(vm.bootImagePath)),format=raw,if=none,id=\(QEMUCommandLine.bootDriveID),snapshot=on"
                        + QEMUCommandLine.throttleOptions(config.diskThrottle),
                     "-device", "ide-hd,drive=\(QEMUCommandLine.bootDriveID),id=\(QEMUCommandLine.bootDeviceID),bootindex=0"]
        }
        if !config.environment.isEmpty {
            args += ["-fw_cfg", "name=\(QEMUCommandLine.environmentFirmwareName),file=\(QEMUCommandLine.escape(environmentFilePath))"]
        }
        return args
    }

    /// `,throttling.iops-total=N,throttling.bps-total=N` for the limits that
    /// are set (0 is QEMU's "no limit" too, left out to keep the line short).
    static func throttleOptions(_ throttle: DiskThrottle) -> String {
        var options = ""
        if throttle.iops > 0 { options += ",throttling.iops-total=\(throttle.iops)" }
        if throttle.bytesPerSecond > 0 { options += ",throttling.bps-total=\(throttle.bytesPerSecond)" }
        return options
    }

    /// The bytes of each packet the network dumps keep: the fewest QEMU
    /// accepts (0 is refused). Only the pcap record header is read, whose
    /// `orig_len` is the packet's size, so a packet costs 17 bytes of FIFO.
    public static let networkDumpCaptureLength = 1

    /// Two `filter-dump` objects on the VM's netdev, each writing a pcap
    /// stream into a FIFO of the VM's folder: QEMU's user networking has no
    /// byte counter of its own. A filter's `queue` names the netdev's side:
    /// `rx` is what the netdev receives from the guest, so it carries the
    /// guest's transmitted packets, and `tx` the guest's received ones.
    public var networkDumpArguments: [String] {
        let files = VMDirectory(path: directory)
        let length = QEMUCommandLine.networkDumpCaptureLength
        return [
            "-object", "filter-dump,id=uni-net-received,netdev=net0,queue=tx,file=\(QEMUCommandLine.escape(files.networkReceivedDumpPath)),maxlen=\(length)",
            "-object", "filter-dump,id=uni-net-transmitted,netdev=net0,queue=rx,file=\(QEMUCommandLine.escape(files.networkTransmittedDumpPath)),maxlen=\(length)",
        ]
    }

    /// The env file's contents: `KEY=VALUE` lines, sorted by name.
    public var environmentFileContents: String {
        vm.config.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined()
    }

    /// Doubles commas, QEMU's escape inside option values.
    static func escape(_ value: String) -> String { value.replacingOccurrences(of: ",", with: ",,") }
}
