import Foundation
import Logging

extension VMManager {
    /// The stored image `reference` names, for a new VM.
    /// One that names a registry and is not stored yet is pulled first
    /// (plain HTTP only from a loopback registry: `uni pull --insecure` for others).
    func resolveImage(_ reference: ImageReference) async throws -> ImageService.Resolution {
        let images = images
        do {
            return try await ImageService.offThread { try images.resolve(reference) }
        } catch let error as UniError where error.code == .notFound && reference.registry != nil {
            logger.info("pulling image for a new vm", metadata: ["image": "\(reference)"])
            let pulled = try await images.pull(reference)
            logger.info("image pulled", metadata: ["image": "\(pulled.reference)", "digest": "\(pulled.digest)", "bytes": .stringConvertible(pulled.size)])
            return try await ImageService.offThread { try images.resolve(reference) }
        }
    }

    /// The manifests VM records use: their blobs outlive their tags.
    func imagesInUse() -> Set<String> {
        Set(table.all.compactMap { $0.image?.digest })
    }

    /// Removes the image tag `reference` (`uni rmi`). An image that VMs
    /// use, under no other tag, is refused unless `force`; forced, the tag
    /// goes and the files stay until the last such VM is removed.
    /// - Returns: the removed entry.
    /// - Throws: ``UniError``: `notFound`; `conflict` naming the VMs.
    public func removeImage(_ reference: String, force: Bool = false) async throws -> StoredImage {
        let parsed = try ImageReference.parse(reference)
        let images = images
        let entry = try await ImageService.offThread { try images.store().resolve(parsed) }
        let users = table.all.filter { $0.image?.digest == entry.digest }
        let otherTags = try await ImageService.offThread { try images.list().filter { $0.digest == entry.digest && $0.reference != entry.reference } }
        if !users.isEmpty, otherTags.isEmpty, !force {
            let names = users.map { "\($0.name) (\($0.state))" }.joined(separator: ", ")
            throw UniError(.conflict, "image \(entry.reference) is used by vm \(names): remove the vm first, or use rmi -f (its files stay until the vm is removed)")
        }
        let keep = imagesInUse()
        let removed = try await ImageService.offThread { try images.remove(entry.reference, keepingManifests: keep) }
        logger.info("image removed", metadata: ["image": "\(removed.reference)", "digest": "\(removed.digest)", "in_use_by": .stringConvertible(users.count)])
        return removed
    }
}

extension VMConfig {
    /// Fills what the request left open from an image's defaults: memory,
    /// vCPUs and command line when not given; the image's environment
    /// under the request's (a request variable wins).
    public mutating func applyDefaults(of image: UniImageConfig) {
        if memory == nil { memory = image.memory }
        if cpus == nil { cpus = image.cpus }
        if kernelCommandLine == nil { kernelCommandLine = image.kernelCommandLine }
        environment = image.environment.merging(environment) { _, request in request }
    }
}
