import Foundation

extension DataDirectory {
    /// Creates the data dir (mode 0700, so only its owner reaches the socket) if needed.
    /// - Throws: ``UniError`` naming the path when it cannot be created or is not a folder.
    public func prepare() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw UniError.invalid("data dir '\(root)' exists and is not a directory")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw UniError(.unavailable, "cannot create data dir '\(root)': \(error.localizedDescription)")
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: vmsDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw UniError(.unavailable, "cannot create '\(vmsDirectory)': \(error.localizedDescription)")
        }
    }
}
