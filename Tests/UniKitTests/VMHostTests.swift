import Foundation
import Logging
import Testing
import UniKit
import UniKitTesting

/// ``VMHost/make(dataDirectory:options:telemetry:tracer:logger:)`` without
/// booting anything (`/bin/true` stands in for QEMU; the guests boot in
/// `VMHostIntegrationTests`).
@Suite("VMHost: a manager with the real backends")
struct VMHostTests {
    let logger = Logger(label: "test")

    @Test("builds a manager on the data dir with the options: accelerator, QEMU, store, stop timeout, no cgroups")
    func builds() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let dataDirectory = DataDirectory(root: directory.path + "/data")
        let host = try await VMHost.make(dataDirectory: dataDirectory,
                                         options: VMHostOptions(accelerator: .tcg, qemuBinary: "/bin/true", vmStore: .sqlite,
                                                                stopTimeout: .seconds(3), cgroupRoot: nil),
                                         logger: logger)
        #expect(host.accelerator == .tcg)
        #expect(host.qemuBinary == "/bin/true")
        #expect(host.cgroups.mechanism == .none)
        #expect(host.cgroups.unavailableReason == "no cgroup root was configured")
        #expect(host.manager.configuration.stopTimeout == .seconds(3))
        #expect(host.manager.configuration.dataDirectory.root == dataDirectory.root)
        #expect(FileManager.default.fileExists(atPath: dataDirectory.databasePath))
        #expect(try await host.manager.load().isEmpty)
        #expect(await host.manager.list(all: true).isEmpty)
    }

    @Test("accelerator auto is TCG when the KVM device cannot be opened; a cgroup root that is not one means no cgroups, with the reason")
    func autoAndCgroupRoot() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let host = try await VMHost.make(dataDirectory: DataDirectory(root: directory.path),
                                         options: VMHostOptions(kvmDevice: directory.path + "/no-kvm", qemuBinary: "/bin/true",
                                                                cgroupRoot: directory.path + "/no-cgroup"),
                                         logger: logger)
        #expect(host.accelerator == .tcg)
        #expect(host.cgroups.unavailableReason == "cgroup root \(directory.path)/no-cgroup does not exist")
    }

    @Test("one manager per data dir: a second one is refused while the first lives")
    func lock() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let dataDirectory = DataDirectory(root: directory.path)
        let options = VMHostOptions(accelerator: .tcg, qemuBinary: "/bin/true", cgroupRoot: nil)
        let first = try await VMHost.make(dataDirectory: dataDirectory, options: options, logger: logger)
        let error = await #expect(throws: UniError.self) {
            try await VMHost.make(dataDirectory: dataDirectory, options: options, logger: logger)
        }
        #expect(error?.code == .conflict)
        #expect(error?.message.contains("data dir '\(directory.path)'") == true)
        withExtendedLifetime(first) {}
    }

    @Test("QEMU missing, KVM unusable and a bad VMs' CPU weight are refused, naming what is missing, before any store is opened")
    func refusals() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let dataDirectory = DataDirectory(root: directory.path)
        let noQEMU = await #expect(throws: UniError.self) {
            try await VMHost.make(dataDirectory: dataDirectory, options: VMHostOptions(accelerator: .tcg, qemuBinary: directory.path + "/qemu", vmStore: .sqlite),
                                  logger: logger)
        }
        #expect(noQEMU?.message == "QEMU binary '\(directory.path)/qemu' is missing or not executable")
        let noKVM = await #expect(throws: UniError.self) {
            try await VMHost.make(dataDirectory: dataDirectory, options: VMHostOptions(accelerator: .kvm, kvmDevice: directory.path + "/kvm", vmStore: .sqlite),
                                  logger: logger)
        }
        #expect(noKVM?.code == .unavailable)
        #expect(noKVM?.message.hasPrefix("--accel kvm: cannot open \(directory.path)/kvm: No such file or directory") == true)
        let badWeight = await #expect(throws: UniError.self) {
            try await VMHost.make(dataDirectory: dataDirectory, options: VMHostOptions(accelerator: .tcg, qemuBinary: "/bin/true", vmStore: .sqlite,
                                                                                      vmsCPUWeight: 0), logger: logger)
        }
        #expect(badWeight?.message.hasPrefix("invalid --vms-cpu-weight '0': use a whole number from 1 to 10000") == true)
        #expect(!FileManager.default.fileExists(atPath: dataDirectory.databasePath))
    }
}
