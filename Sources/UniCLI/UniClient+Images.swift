#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UniCore

/// The image store and registry calls (`uni images`, `pull`, `push`, `login`).
extension UniClient {
    /// `GET /v1/images`: the stored images, newest first.
    public func images() throws -> [StoredImage] { try call("GET", "/v1/images") }

    /// `POST /v1/images/import`: files on unid's host become a stored image.
    public func importImage(_ request: ImageImportRequest) throws -> StoredImage {
        // Copies and hashes the files: a few GiB take a while.
        try call("POST", "/v1/images/import", body: try JSONCoding.makeEncoder().encode(request), wait: .longer(.seconds(600)))
    }

    /// `POST /v1/images/tag`.
    public func tagImage(_ source: String, as target: String) throws -> StoredImage {
        try call("POST", "/v1/images/tag", body: try JSONCoding.makeEncoder().encode(ImageTagRequest(source: source, target: target)))
    }

    /// `DELETE /v1/images?ref=...`: returns the removed entry.
    public func removeImage(_ reference: String, force: Bool = false) throws -> StoredImage {
        try call("DELETE", "/v1/images?ref=\(UniClient.percentEncoded(reference))" + (force ? "&force=true" : ""))
    }

    /// `POST /v1/images/pull`: streams ``ImageTransferEvent``s to `onEvent`
    /// until the pull ends; returns the stored image.
    /// - Throws: ``UniError``: the daemon's refusal before the transfer, or the transfer's own error.
    public func pull(_ request: ImagePullRequest, onEvent: (ImageTransferEvent) -> Void = { _ in }) throws -> StoredImage {
        try transfer("/v1/images/pull", body: try JSONCoding.makeEncoder().encode(request), onEvent: onEvent)
    }

    /// `POST /v1/images/push`: as ``pull(_:onEvent:)``; returns the pushed reference and manifest digest.
    public func push(_ request: ImagePushRequest, onEvent: (ImageTransferEvent) -> Void = { _ in }) throws -> StoredImage {
        try transfer("/v1/images/push", body: try JSONCoding.makeEncoder().encode(request), onEvent: onEvent)
    }

    /// `POST /v1/auth`: unid checks the credentials against the registry and saves them.
    public func login(_ request: RegistryLoginRequest) throws {
        let _: [String: String] = try call("POST", "/v1/auth", body: try JSONCoding.makeEncoder().encode(request), wait: .longer(.seconds(30)))
    }

    /// `DELETE /v1/auth?registry=...`.
    public func logout(registry: String) throws {
        let _: Empty = try call("DELETE", "/v1/auth?registry=\(Self.percentEncoded(registry))")
    }

    /// Reads a transfer's NDJSON answer to its `done` or `error` line.
    private func transfer(_ target: String, body: Data, onEvent: (ImageTransferEvent) -> Void) throws -> StoredImage {
        let reader = try stream("POST", target, body: body).body
        defer { reader.close() }
        let decoder = JSONCoding.makeDecoder()
        while let line = try reader.nextLine() {
            guard let event = try? decoder.decode(ImageTransferEvent.self, from: Data(line)) else { continue }
            switch event.type {
            case "done":
                guard let image = event.image else { throw UniError(.internalError, "unid's transfer ended without the image") }
                return image
            case "error":
                throw UniError(UniError.Code(name: event.code ?? "") ?? .internalError, event.error ?? "the transfer failed")
            default:
                onEvent(event)
            }
        }
        throw UniError(.unavailable, "unid closed the transfer before it ended")
    }
}
