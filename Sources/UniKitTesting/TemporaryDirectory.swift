import Foundation

/// A fresh folder under the system temp dir, removed by ``remove()``.
///
/// Paths stay short (`/tmp/uni-XXXXXX`) because Unix socket paths inside
/// it are limited to 107 bytes.
public struct TemporaryDirectory: Sendable {
    /// The folder's absolute path.
    public let path: String

    /// Creates the folder.
    /// - Throws: when the folder cannot be created.
    public init(prefix: String = "uni") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(cString: made)
    }

    /// Deletes the folder and everything in it.
    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Runs `body` with a new temporary folder and removes it afterwards.
    public static func with<Result>(prefix: String = "uni", _ body: (TemporaryDirectory) async throws -> Result) async throws -> Result {
        let directory = try TemporaryDirectory(prefix: prefix)
        defer { directory.remove() }
        return try await body(directory)
    }

    /// Writes a file that the manager takes for a kernel image (an ELF
    /// header; the scripted hypervisor never boots it) and returns its path.
    @discardableResult
    public func makeFakeKernel(named name: String = "kernel.elf") -> String {
        let image = path + "/" + name
        _ = FileManager.default.createFile(atPath: image, contents: Data([0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 60)))
        return image
    }
}
