import Foundation
import Testing
import UniKitTesting
@testable import UniKit

/// A temporary folder laid out like cgroupfs: the "kernel files" of each
/// cgroup are made by the test, as the kernel makes them with the folder.
struct FakeCgroupRoot {
    let directory: TemporaryDirectory
    var root: String { directory.path }

    init() throws { directory = try TemporaryDirectory(prefix: "uni-cg") }

    func file(_ path: String, _ contents: String = "") throws {
        let url = URL(fileURLWithPath: root + "/" + path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try contents.write(to: url, atomically: false, encoding: .utf8)
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: root + "/" + path, encoding: .utf8) }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: root + "/" + path) }

    static let psi = "some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\nfull avg10=0.50 avg60=0.10 avg300=0.00 total=4567\n"

    /// A cgroup v2 host with cpu and memory, and the cgroup of `id` as the kernel would make it.
    func layOutV2(_ id: VMID) throws {
        try file("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
        try file("cgroup.subtree_control", "\n")
        try file("uni/cgroup.subtree_control", "\n")
        try file("uni/cpu.weight", "100\n")
        let vm = "uni/\(id)/"
        try file(vm + "cgroup.procs")
        try file(vm + "cpu.weight", "100\n")
        try file(vm + "memory.max", "max\n")
        try file(vm + "memory.swap.max", "max\n")
        try file(vm + "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
        try file(vm + "cpu.pressure", FakeCgroupRoot.psi)
        try file(vm + "memory.pressure", FakeCgroupRoot.psi)
        try file(vm + "io.pressure", FakeCgroupRoot.psi)
    }

    /// A hybrid host: v1 cpu and memory, a unified tree with hugetlb only, and the cgroups of `id`.
    func layOutV1(_ id: VMID, unified: Bool = true) throws {
        try file("cpu/cpu.shares", "1024\n")
        try file("cpu/uni/cpu.shares", "1024\n")
        try file("memory/memory.limit_in_bytes", "9223372036854771712\n")
        try file("cpu/uni/\(id)/cgroup.procs")
        try file("cpu/uni/\(id)/cpu.shares", "1024\n")
        let memory = "memory/uni/\(id)/"
        try file(memory + "cgroup.procs")
        try file(memory + "memory.limit_in_bytes", "9223372036854771712\n")
        try file(memory + "memory.memsw.limit_in_bytes", "9223372036854771712\n")
        try file(memory + "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
        if unified {
            try file("unified/cgroup.controllers", "hugetlb\n")
            try file("unified/cgroup.procs")
            try file("unified/uni/\(id)/cgroup.procs")
            try file("unified/uni/\(id)/cpu.pressure", FakeCgroupRoot.psi)
            try file("unified/uni/\(id)/memory.pressure", FakeCgroupRoot.psi)
            try file("unified/uni/\(id)/io.pressure", FakeCgroupRoot.psi)
        }
    }
}

@Suite("cgroup controllers (fake cgroupfs)")
struct CgroupControllerTests {
    let id = VMID.random()

    @Test("v2: enables cpu and memory, writes cpu.weight and memory.max, swap off under a ceiling")
    func v2Create() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV2(id)
        let controller = CgroupV2Controller(root: fake.root)
        let placement = try controller.create(for: id, quota: ResourceQuota(cpuShares: 250, memoryMax: ByteSize(bytes: 256 << 20)))
        #expect(placement.directories == [fake.root + "/uni/\(id)"])
        #expect(placement.procsFiles == [fake.root + "/uni/\(id)/cgroup.procs"])
        #expect(placement.lateDirectory == nil)
        #expect(placement.mechanism == .v2)
        #expect(fake.read("cgroup.subtree_control") == "+cpu +memory")
        #expect(fake.read("uni/cgroup.subtree_control") == "+cpu +memory")
        #expect(fake.read("uni/\(id)/cpu.weight") == "250")
        #expect(fake.read("uni/\(id)/memory.max") == "\(256 << 20)")
        #expect(fake.read("uni/\(id)/memory.swap.max") == "0")
        #expect(fake.read("uni/cpu.weight") == "\(CgroupControllers.defaultVMsCPUWeight)")
    }

    @Test("the VMs' parent cgroup gets the weight of every VM together, written only when it changed")
    func vmsWeight() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV2(id)
        _ = try CgroupV2Controller(root: fake.root, vmsCPUWeight: 250).create(for: id, quota: ResourceQuota())
        #expect(fake.read("uni/cpu.weight") == "250")
        try fake.file("uni/cpu.weight", "250\n")
        _ = try CgroupV2Controller(root: fake.root, vmsCPUWeight: 250).create(for: id, quota: ResourceQuota())
        #expect(fake.read("uni/cpu.weight") == "250\n")

        let v1 = try FakeCgroupRoot()
        defer { v1.directory.remove() }
        try v1.layOutV1(id)
        let controller = CgroupControllers.detect(root: v1.root, vmsCPUWeight: 5)
        #expect(controller.mechanism == .v1)
        _ = try controller.create(for: id, quota: ResourceQuota())
        #expect(v1.read("cpu/uni/cpu.shares") == "51")
        #expect(v1.read("cpu/uni/\(id)/cpu.shares") == "1024")

        // A parent whose weight file the kernel did not make: named, and no VM cgroup is left.
        let broken = try FakeCgroupRoot()
        defer { broken.directory.remove() }
        try broken.file("cgroup.controllers", "cpu memory\n")
        try broken.file("cgroup.subtree_control", "cpu memory\n")
        try broken.file("uni/cgroup.subtree_control", "cpu memory\n")
        #expect {
            try CgroupV2Controller(root: broken.root).create(for: id, quota: ResourceQuota())
        } throws: { error in
            (error as? UniError)?.message == "cannot set the cpu weight of every VM together to '10' in '\(broken.root)/uni/cpu.weight': No such file or directory"
        }
        #expect(!broken.exists("uni/\(id)"))
    }

    @Test("--vms-cpu-weight: 1-10000, a bad value named")
    func vmsWeightParsing() throws {
        #expect(try CgroupControllers.parseVMsCPUWeight("1") == 1)
        #expect(try CgroupControllers.parseVMsCPUWeight("10000") == 10_000)
        for bad in ["0", "10001", "-5", "ten", ""] {
            #expect {
                try CgroupControllers.parseVMsCPUWeight(bad)
            } throws: { error in
                (error as? UniError)?.message == "invalid --vms-cpu-weight '\(bad)': use a whole number from 1 to 10000 (default 10; the kernel's default is 100)"
            }
        }
    }

    @Test("v2: subtree_control that already lists cpu and memory is left alone")
    func v2KeepsEnabledControllers() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV2(id)
        try fake.file("cgroup.subtree_control", "cpu io memory pids\n")
        _ = try CgroupV2Controller(root: fake.root).create(for: id, quota: ResourceQuota())
        #expect(fake.read("cgroup.subtree_control") == "cpu io memory pids\n")
    }

    @Test("v2: an update without limits goes back to weight 100 and memory.max max")
    func v2UpdateToDefaults() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV2(id)
        let controller = CgroupV2Controller(root: fake.root)
        let placement = try controller.create(for: id, quota: ResourceQuota(cpuShares: 5000, memoryMax: ByteSize(bytes: 1 << 30)))
        try controller.update(placement, quota: ResourceQuota(cpuShares: 42))
        #expect(fake.read("uni/\(id)/cpu.weight") == "42")
        try controller.update(placement, quota: ResourceQuota())
        #expect(fake.read("uni/\(id)/cpu.weight") == "100")
        #expect(fake.read("uni/\(id)/memory.max") == "max")
        #expect(fake.read("uni/\(id)/memory.swap.max") == "max")
    }

    @Test("v2: oom_kill in memory.events means OOM-killed; PSI is parsed; remove takes the folder")
    func v2OOMPressureRemove() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV2(id)
        let controller = CgroupV2Controller(root: fake.root)
        let placement = try controller.create(for: id, quota: ResourceQuota(memoryMax: ByteSize(bytes: 64 << 20)))
        #expect(!controller.oomKilled(placement))
        try fake.file("uni/\(id)/memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
        #expect(controller.oomKilled(placement))
        let pressure = try #require(controller.pressure(of: placement))
        #expect(pressure.cpu?.some == PressureLine(avg10: 1.5, avg60: 0.25, avg300: 0.05, totalMicroseconds: 123_456))
        #expect(pressure.memory?.full?.totalMicroseconds == 4567)
        #expect(pressure.io != nil)
        try controller.remove(placement)
        #expect(!fake.exists("uni/\(id)"))
        #expect(fake.exists("uni"), "the shared parent stays")
    }

    @Test("v2: no pressure files means no pressure, not zeros")
    func v2NoPressure() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV2(id)
        for name in ["cpu", "memory", "io"] { try FileManager.default.removeItem(atPath: fake.root + "/uni/\(id)/\(name).pressure") }
        let controller = CgroupV2Controller(root: fake.root)
        let placement = try controller.create(for: id, quota: ResourceQuota())
        #expect(controller.pressure(of: placement) == nil)
    }

    @Test("a cgroup whose files the kernel did not make is refused, naming the file, and nothing is left")
    func v2UnwritableCgroup() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.file("cgroup.controllers", "cpu memory\n")
        try fake.file("cgroup.subtree_control", "cpu memory\n")
        try fake.file("uni/cgroup.subtree_control", "cpu memory\n")
        try fake.file("uni/cpu.weight", "10\n")
        let controller = CgroupV2Controller(root: fake.root)
        #expect {
            try controller.create(for: id, quota: ResourceQuota(cpuShares: 7))
        } throws: { error in
            (error as? UniError)?.message == "cannot set the cpu weight to '7' in '\(fake.root)/uni/\(id)/cpu.weight': No such file or directory"
        }
        #expect(!fake.exists("uni/\(id)"))
    }

    @Test("a leftover cgroup that still holds processes is refused")
    func v2BusyLeftover() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV2(id)
        try fake.file("uni/\(id)/cgroup.procs", "4242\n")
        #expect {
            try CgroupV2Controller(root: fake.root).create(for: id, quota: ResourceQuota())
        } throws: { error in
            (error as? UniError)?.message == "cgroup '\(fake.root)/uni/\(id)' still holds processes of an earlier run of vm \(id)"
        }
    }

    @Test("v1: cpu.shares from the weight, memory and memsw limits, the unified tree joined for PSI")
    func v1Create() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV1(id)
        let controller = CgroupV1Controller(root: fake.root)
        let placement = try controller.create(for: id, quota: ResourceQuota(cpuShares: 50, memoryMax: ByteSize(bytes: 96 << 20)))
        #expect(placement.directories == ["cpu", "memory", "unified"].map { fake.root + "/\($0)/uni/\(id)" })
        #expect(placement.pressureDirectory == fake.root + "/unified/uni/\(id)")
        // Limits before the exec, through the thread-level files; the PSI-only cgroup once QEMU runs.
        #expect(placement.procsFiles == ["cpu", "memory"].map { fake.root + "/\($0)/uni/\(id)/tasks" })
        #expect(placement.lateDirectory == fake.root + "/unified/uni/\(id)")
        #expect(fake.read("cpu/uni/\(id)/cpu.shares") == "512")
        #expect(fake.read("memory/uni/\(id)/memory.limit_in_bytes") == "\(96 << 20)")
        #expect(fake.read("memory/uni/\(id)/memory.memsw.limit_in_bytes") == "\(96 << 20)")
        #expect(controller.pressure(of: placement)?.cpu?.some.avg10 == 1.5)
        try controller.update(placement, quota: ResourceQuota())
        #expect(fake.read("cpu/uni/\(id)/cpu.shares") == "1024")
        #expect(fake.read("memory/uni/\(id)/memory.limit_in_bytes") == "-1")
        #expect(fake.read("memory/uni/\(id)/memory.memsw.limit_in_bytes") == "-1")
    }

    @Test("v1: weight to shares is x 1024 / 100, at least 2")
    func v1Shares() {
        #expect(CgroupV1Controller.shares(forWeight: 100) == 1024)
        #expect(CgroupV1Controller.shares(forWeight: 10_000) == 102_400)
        #expect(CgroupV1Controller.shares(forWeight: 1) == 10)
        #expect(CgroupV1Controller.shares(forWeight: 0) == 2)
    }

    @Test("v1: oom_kill in memory.oom_control means OOM-killed; remove takes every folder")
    func v1OOMRemove() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV1(id, unified: false)
        let controller = CgroupV1Controller(root: fake.root)
        let placement = try controller.create(for: id, quota: ResourceQuota(memoryMax: ByteSize(bytes: 64 << 20)))
        #expect(placement.pressureDirectory == nil)
        #expect(controller.pressure(of: placement) == nil)
        #expect(!controller.oomKilled(placement))
        try fake.file("memory/uni/\(id)/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
        #expect(controller.oomKilled(placement))
        try controller.remove(placement)
        #expect(!fake.exists("cpu/uni/\(id)"))
        #expect(!fake.exists("memory/uni/\(id)"))
    }

    @Test("v1: an empty leftover is reused with its OOM count as the baseline")
    func v1LeftoverBaseline() throws {
        let fake = try FakeCgroupRoot()
        defer { fake.directory.remove() }
        try fake.layOutV1(id)
        try fake.file("memory/uni/\(id)/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
        let controller = CgroupV1Controller(root: fake.root)
        let placement = try controller.create(for: id, quota: ResourceQuota())
        #expect(placement.oomKillBaseline == 3)
        #expect(!controller.oomKilled(placement))
        controller.removeLeftover(of: id)
        #expect(!fake.exists("memory/uni/\(id)"))
        #expect(!fake.exists("unified/uni/\(id)"))
    }

    @Test("detection: v2 with cpu and memory, else hybrid v1, else none with the reason")
    func detection() throws {
        let v2 = try FakeCgroupRoot()
        defer { v2.directory.remove() }
        try v2.file("cgroup.controllers", "cpuset cpu io memory pids\n")
        #expect(CgroupControllers.detect(root: v2.root) is CgroupV2Controller)

        let hybrid = try FakeCgroupRoot()
        defer { hybrid.directory.remove() }
        try hybrid.layOutV1(id)
        #expect(CgroupControllers.detect(root: hybrid.root) is CgroupV1Controller)

        let bare = try FakeCgroupRoot()
        defer { bare.directory.remove() }
        try bare.file("cgroup.controllers", "hugetlb\n")
        let none = CgroupControllers.detect(root: bare.root)
        #expect(none.mechanism == .none)
        #expect(none.unavailableReason == "the cgroup v2 tree at \(bare.root) lacks the cpu and memory controllers (it has: hugetlb)")

        let missing = CgroupControllers.detect(root: bare.root + "/nowhere")
        #expect(missing.unavailableReason == "cgroup root \(bare.root)/nowhere does not exist")
        #expect(throws: UniError.self) { try missing.create(for: id, quota: ResourceQuota()) }
    }

    @Test("PSI text: some and full lines; a file without a some line is unreadable")
    func pressureParsing() {
        let stall = PressureStall(parsing: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
        #expect(stall == PressureStall(some: PressureLine(avg10: 0, avg60: 0, avg300: 0, totalMicroseconds: 0)))
        #expect(PressureStall(parsing: "full avg10=1.00 avg60=0.00 avg300=0.00 total=5\n") == nil)
        #expect(PressureStall(parsing: "some avg10=x\n") == nil)
    }
}
