import Foundation

/// Tells a kernel image from a bootable disk image by its first bytes.
public enum ImageInspector {
    /// The kind of the image at `path`.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the path when it is
    ///   missing, unreadable, not a file, or neither kind.
    public static func kind(ofImageAt path: String) throws -> ImageKind {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UniError.invalid("image '\(path)' does not exist")
        }
        guard !isDirectory.boolValue else { throw UniError.invalid("image '\(path)' is a directory, not an image file") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw UniError.invalid("image '\(path)' is not readable")
        }
        defer { try? handle.close() }
        let header = [UInt8]((try? handle.read(upToCount: 1024)) ?? Data())
        if header.starts(with: [0x7F, 0x45, 0x4C, 0x46]) { return .kernel }  // ELF (PVH or multiboot)
        if header.count >= 0x206, Array(header[0x202..<0x206]) == Array("HdrS".utf8) { return .kernel }  // bzImage
        if header.count >= 512, header[510] == 0x55, header[511] == 0xAA { return .disk }  // MBR boot signature
        throw UniError.invalid("image '\(path)' is neither a kernel (ELF or bzImage) nor a bootable disk image (no boot signature at byte 510)")
    }
}
