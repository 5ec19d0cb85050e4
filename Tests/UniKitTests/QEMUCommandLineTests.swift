import Foundation
import Testing
@testable import UniKit
import UniKitTesting

@Suite("QEMU command line")
struct QEMUCommandLineTests {
    func vm(_ kind: ImageKind, config: VMConfig) -> VM {
        VM(id: try! VMID("0123456789ab"), name: "web", config: config, imageKind: kind, createdAt: Date())
    }

    @Test("a kernel image boots with -kernel on microvm, console on stdio, QMP socket, debug exit")
    func kernel() {
        let config = VMConfig(image: "/img/k.elf", memory: .mebibytes(64), cpus: 2, ports: [PortMapping(hostPort: 8080, guestPort: 80), PortMapping(hostAddress: "127.0.0.1", hostPort: 5353, guestPort: 53, transportProtocol: .udp)], kernelCommandLine: "lines=3")
        let args = QEMUCommandLine(vm: vm(.kernel, config: config), directory: "/d/vms/0123456789ab", accelerator: .kvm).arguments
        #expect(args == [
            "-name", "guest=web,debug-threads=on", "-machine", "microvm", "-accel", "kvm", "-m", "64M", "-smp", "2",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
            "-qmp", "unix:/d/vms/0123456789ab/qmp.sock,server=on,wait=off",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-netdev", "user,id=net0,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:5353-:53", "-device", "virtio-net-device,netdev=net0",
            "-object", "filter-dump,id=uni-net-received,netdev=net0,queue=tx,file=/d/vms/0123456789ab/net-received.fifo,maxlen=1",
            "-object", "filter-dump,id=uni-net-transmitted,netdev=net0,queue=rx,file=/d/vms/0123456789ab/net-transmitted.fifo,maxlen=1",
            "-kernel", "/img/k.elf", "-append", "lines=3",
        ])
    }

    @Test("an isolated network is user networking with restrict=on, its forwards kept; a record without the field decodes as user")
    func isolatedNetwork() throws {
        let config = VMConfig(image: "/img/k.elf", ports: [PortMapping(hostPort: 8080, guestPort: 80)], network: .isolated)
        let args = QEMUCommandLine(vm: vm(.kernel, config: config), directory: "/d", accelerator: .tcg).arguments
        let netdev = try #require(args.firstIndex(of: "-netdev"))
        #expect(args[netdev + 1] == "user,id=net0,restrict=on,hostfwd=tcp::8080-:80")
        let old = try JSONCoding.makeDecoder().decode(VMConfig.self, from: Data(#"{"image": "/img/k.elf"}"#.utf8))
        #expect(old.network == .user)
        #expect(throws: UniError.self) { try JSONCoding.makeDecoder().decode(VMConfig.self, from: Data(#"{"image": "/k", "network": "host"}"#.utf8)) }
    }

    @Test("network counting dumps each direction into a FIFO of the VM folder, escaped; off, no filter is attached")
    func networkDumps() {
        let config = VMConfig(image: "/img/k.elf")
        let line = QEMUCommandLine(vm: vm(.kernel, config: config), directory: "/data,x/vms/a", accelerator: .tcg)
        // queue=tx is what the netdev sends to the guest: the guest's received bytes.
        #expect(line.networkDumpArguments == [
            "-object", "filter-dump,id=uni-net-received,netdev=net0,queue=tx,file=/data,,x/vms/a/net-received.fifo,maxlen=1",
            "-object", "filter-dump,id=uni-net-transmitted,netdev=net0,queue=rx,file=/data,,x/vms/a/net-transmitted.fifo,maxlen=1",
        ])
        let off = QEMUCommandLine(vm: vm(.kernel, config: config), directory: "/d", accelerator: .tcg, countsNetworkTraffic: false)
        #expect(!off.arguments.contains("-object"))
        #expect(off.arguments.count == line.arguments.count - 4)
    }

    @Test("the boot disk's counters come from the disk0 entry of query-blockstats")
    func blockStats() throws {
        let answer = try JSONDecoder().decode(JSONValue.self, from: Data("""
        [{"device": "", "qdev": "/machine/unattached/device[20]", "stats": {"rd_bytes": 7, "wr_bytes": 0, "rd_operations": 1, "wr_operations": 0}},
         {"device": "disk0", "qdev": "bootdisk", "stats": {"rd_bytes": 51712, "wr_bytes": 4096, "rd_operations": 101, "wr_operations": 2, "flush_operations": 0}}]
        """.utf8))
        let disk = try #require(QEMUInstance.bootDiskStatistics(in: answer))
        #expect(disk.readBytes == 51712 && disk.writtenBytes == 4096 && disk.readOperations == 101 && disk.writeOperations == 2)
        #expect(QEMUInstance.bootDiskStatistics(in: .array([])) == nil)
        let partial = JSONValue.array([.object(["device": .string("disk0"), "stats": .object(["rd_bytes": .number(1)])])])
        #expect(QEMUInstance.bootDiskStatistics(in: partial) == nil)
    }

    @Test("a disk image boots from IDE on pc with a snapshot overlay; commas are escaped")
    func disk() {
        let args = QEMUCommandLine(vm: vm(.disk, config: VMConfig(image: "/img/a,b.img")), directory: "/d", accelerator: .tcg).arguments
        #expect(args.contains("file=/img/a,,b.img,format=raw,if=none,id=disk0,snapshot=on"))
        #expect(args.contains("ide-hd,drive=disk0,id=bootdisk,bootindex=0"))
        #expect(args.contains("virtio-net-pci,netdev=net0"))
        #expect(!args.contains("-kernel"))
    }

    @Test("disk limits become the boot drive's throttling options; 0 leaves each out")
    func diskThrottle() {
        func drive(_ throttle: DiskThrottle) -> String? {
            let args = QEMUCommandLine(vm: vm(.disk, config: VMConfig(image: "/img/d.img", diskThrottle: throttle)), directory: "/d", accelerator: .tcg).arguments
            return args.first { $0.hasPrefix("file=") }
        }
        #expect(drive(DiskThrottle(iops: 50)) == "file=/img/d.img,format=raw,if=none,id=disk0,snapshot=on,throttling.iops-total=50")
        #expect(drive(DiskThrottle(iops: 50, bytesPerSecond: 10 << 20))?.hasSuffix(",throttling.iops-total=50,throttling.bps-total=10485760") == true)
        #expect(drive(DiskThrottle(bytesPerSecond: 4096))?.hasSuffix("snapshot=on,throttling.bps-total=4096") == true)
        #expect(drive(.unlimited)?.hasSuffix("snapshot=on") == true)
    }

    @Test("block_set_io_throttle gets all six limits as integers, on the guest device's id")
    func throttleArguments() throws {
        let arguments = QEMUInstance.throttleArguments(DiskThrottle(iops: 20, bytesPerSecond: DiskThrottle.maximumValue))
        let json = String(decoding: try JSONEncoder().encode(JSONValue.object(arguments)), as: UTF8.self)
        for part in [#""id":"bootdisk""#, #""iops":20"#, #""bps":1000000000000000"#, #""bps_rd":0"#, #""bps_wr":0"#, #""iops_rd":0"#, #""iops_wr":0"#] {
            #expect(json.contains(part), "\(json)")
        }
        #expect(String(decoding: try JSONEncoder().encode(JSONValue.number(1.5)), as: UTF8.self) == "1.5")
    }

    @Test("-kernel and -append take plain values: their commas reach QEMU as given")
    func plainKernelValues() {
        // QEMU 7.2 stores both verbatim (vl.c: qdict_put_str(machine_opts_dict, "kernel", optarg));
        // checked by hand with a kernel named x,readonly=on.elf, which boots.
        let config = VMConfig(image: "/img/x,readonly=on.elf", kernelCommandLine: "console=ttyS0,115200 a=b")
        let args = QEMUCommandLine(vm: vm(.kernel, config: config), directory: "/d", accelerator: .tcg).arguments
        #expect(args.suffix(4) == ["-kernel", "/img/x,readonly=on.elf", "-append", "console=ttyS0,115200 a=b"])
    }

    @Test("a record with an unchecked value is refused at launch, before QEMU runs")
    func launchRevalidates() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let config = VMConfig(image: "/k", ports: [PortMapping(hostAddress: "127.0.0.1:1-:22,guestfwd=tcp:10.0.2.100:1-cmd:/bin/true", hostPort: 8080, guestPort: 80)])
        let request = LaunchRequest(vm: vm(.kernel, config: config), directory: directory.path, console: ConsoleLog(path: directory.path + "/console.log"))
        let hypervisor = QEMUHypervisor(binaryPath: "/bin/true", accelerator: .tcg)
        let error = await #expect(throws: UniError.self) { try await hypervisor.launch(request) }
        #expect(error?.message.hasPrefix("invalid port mapping: host address '127.0.0.1:1-:22,guestfwd=") == true)
    }

    @Test("the environment reaches the guest through an fw_cfg file, never the process list")
    func environment() {
        let line = QEMUCommandLine(vm: vm(.kernel, config: VMConfig(image: "/k", environment: ["PORT": "80", "A": "x y"])), directory: "/d", accelerator: .tcg)
        #expect(line.arguments.suffix(2) == ["-fw_cfg", "name=opt/uni/env,file=/d/env"])
        #expect(!line.arguments.joined(separator: " ").contains("PORT"))
        #expect(line.environmentFileContents == "A=x y\nPORT=80\n")
    }

    @Test("QEMU exits map to docker-style exit codes")
    func exitCodes() {
        #expect(QEMUInstance.interpret(.exited(0)) == VMExit(exitCode: 0, processStatus: 0))
        #expect(QEMUInstance.interpret(.exited(1)) == VMExit(exitCode: 0, processStatus: 1))
        #expect(QEMUInstance.interpret(.exited(15)) == VMExit(exitCode: 7, processStatus: 15))
        #expect(QEMUInstance.interpret(.signalled(9)) == VMExit(exitCode: 137, signal: 9))
    }

    @Test("a QEMU that ended before QMP answered was a guest exit only without an error")
    func earlyExit() {
        #expect(QEMUHypervisor.isGuestExit(.exited(15), standardError: ""))
        #expect(QEMUHypervisor.isGuestExit(.exited(0), standardError: ""))
        #expect(QEMUHypervisor.isGuestExit(.exited(1), standardError: ""))
        #expect(!QEMUHypervisor.isGuestExit(.exited(1), standardError: "qemu-system-x86_64: -m 1: bad size"))
        #expect(!QEMUHypervisor.isGuestExit(.exited(2), standardError: ""))
        #expect(!QEMUHypervisor.isGuestExit(.signalled(11), standardError: ""))
    }

    @Test("accelerator: tcg always resolves; kvm on a missing device names it")
    func accelerator() throws {
        #expect(try AcceleratorChoice.tcg.resolve(kvmDevice: "/nonexistent") == .tcg)
        #expect(try AcceleratorChoice.auto.resolve(kvmDevice: "/nonexistent") == .tcg)
        let error = try #require(throws: UniError.self) { try AcceleratorChoice.kvm.resolve(kvmDevice: "/nonexistent") }
        #expect(error.message.hasPrefix("--accel kvm: cannot open /nonexistent"))
    }

    @Test("a missing QEMU binary names the package to install")
    func missingBinary() throws {
        let error = try #require(throws: UniError.self) { try QEMUHypervisor.locateBinary("qemu-nope", environment: ["PATH": "/nonexistent"]) }
        #expect(error.message == "'qemu-nope' not found on PATH: install QEMU (apt-get install qemu-system-x86, or run scripts/setup.sh)")
    }
}
