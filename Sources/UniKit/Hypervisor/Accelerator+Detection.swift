import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The `--accel` choice: a fixed accelerator or automatic detection.
public enum AcceleratorChoice: String, Sendable, CaseIterable {
    /// KVM when `/dev/kvm` opens read-write, else TCG.
    case auto
    /// KVM, or an error when it is not usable.
    case kvm
    /// Software emulation.
    case tcg

    /// Resolves the choice on this host.
    /// - Parameter kvmDevice: the KVM device node (injectable for tests).
    /// - Throws: ``UniError`` (`unavailable`) for `kvm` when the device cannot be opened.
    public func resolve(kvmDevice: String = "/dev/kvm") throws -> Accelerator {
        switch self {
        case .tcg:
            return .tcg
        case .auto:
            return AcceleratorChoice.canOpen(kvmDevice) == nil ? .kvm : .tcg
        case .kvm:
            if let reason = AcceleratorChoice.canOpen(kvmDevice) {
                throw UniError(.unavailable, "--accel kvm: cannot open \(kvmDevice): \(reason); use --accel tcg or auto")
            }
            return .kvm
        }
    }

    private static func canOpen(_ path: String) -> String? {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        close(fd)
        return nil
    }
}
