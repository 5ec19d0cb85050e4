import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension QEMUHypervisor {
    /// Kills the QEMU a dead daemon left for `vm`: its pid comes from the
    /// record or, for a daemon that died between spawning QEMU and recording
    /// `running`, from `<vm-dir>/qemu.pid`. The process is killed only when
    /// its `/proc/<pid>/cmdline` names the VM's QMP socket, so a pid reused
    /// by another program is left alone.
    public func stopOrphan(of vm: VM, directory: String) async -> Bool {
        guard let pid = vm.pid ?? QEMUHypervisor.recordedPID(in: directory), pid > 0,
              let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
              String(decoding: cmdline, as: UTF8.self).contains(VMDirectory(path: directory).qmpSocketPath) else { return false }
        return Glibc.kill(pid, SIGKILL) == 0
    }

    /// The pid QEMU's launcher wrote next to the record.
    static func recordedPID(in directory: String) -> Int32? {
        FileManager.default.contents(atPath: VMDirectory(path: directory).pidFilePath)
            .flatMap { Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
