import Foundation
import Testing
import RegistryTestSupport
@testable import UniKit
import UniKitTesting

/// The client against an in-process fake registry: the Bearer token
/// flow, blobs that lie, images that are not Uni images, a registry that
/// never answers or is not there.
@Suite("Registry client against a fake registry")
struct FakeRegistryTests {
    @Test("Bearer: a 401 challenge sends the client to the realm with Basic credentials and the scope; the token is used on the retry")
    func bearerWithCredentials() async throws {
        let credentials = RegistryCredentials(username: "robot", password: "p4ss")
        try await TemporaryDirectory.with(prefix: "uni-bearer") { folder in
            let source = try ImageStore(root: folder.path + "/source")
            let image = try makeImage(in: source, as: "app:1", initrdBytes: 100_000)
            let saved = RegistryCredentialStore(path: folder.path + "/auth.json")
            let fake = FakeRegistry(bearer: .init(credentials: credentials))
            try fake.add(image: image, from: source, tag: "1")
            try await fake.run { fake in
                try saved.save(credentials, for: fake.registry)
                let store = try ImageStore(root: folder.path + "/images")
                let reference = try ImageReference.parse("\(fake.registry)/team/app:1")
                let pulled = try await RegistryClient(credentials: saved).pull(reference, into: store, insecure: true) { _ in }
                #expect(pulled.digest == image.digest)
                let state = fake.state.withLock { ($0.tokenRequests, $0.authorizations) }
                // One token fetch, with Basic credentials, the service and the scope; then every request carries the token.
                #expect(state.0.count == 1)
                #expect(state.0.first?.authorization == "Basic " + Data("robot:p4ss".utf8).base64EncodedString())
                #expect(state.0.first?.query.contains("service=fake-registry") == true)
                #expect(state.0.first?.query.contains("scope=repository:team/app:pull") == true)
                #expect(state.1.first == .some(nil))
                #expect(state.1.dropFirst().allSatisfy { $0 == "Bearer " + FakeRegistry.token })

                try await RegistryClient().login(registry: fake.registry, credentials: credentials, insecure: true)
                let wrong = await #expect(throws: UniError.self) {
                    try await RegistryClient().login(registry: fake.registry, credentials: RegistryCredentials(username: "robot", password: "nope"), insecure: true)
                }
                #expect(wrong?.message == "registry \(fake.registry) rejected the credentials of 'robot' (401): check them with `uni login \(fake.registry)`")
                let anonymous = await #expect(throws: UniError.self) {
                    try await RegistryClient().pull(reference, into: store, insecure: true) { _ in }
                }
                #expect(anonymous?.code == .unauthenticated)
                #expect(anonymous?.message == "cannot pull \(reference): registry \(fake.registry) requires authentication to pull team/app (401): run `uni login \(fake.registry)`")
            }
        }
    }

    @Test("Bearer: anonymous tokens (access_token field) work without credentials")
    func bearerAnonymous() async throws {
        try await TemporaryDirectory.with(prefix: "uni-bearer") { folder in
            let source = try ImageStore(root: folder.path + "/source")
            let image = try makeImage(in: source, as: "app:1", initrdBytes: 10_000)
            let fake = FakeRegistry(bearer: .init(credentials: nil, accessTokenField: true))
            try fake.add(image: image, from: source, tag: "1")
            try await fake.run { fake in
                let store = try ImageStore(root: folder.path + "/images")
                let pulled = try await RegistryClient().pull(try ImageReference.parse("\(fake.registry)/app:1"), into: store, insecure: true) { _ in }
                #expect(pulled.digest == image.digest)
                #expect(fake.state.withLock { $0.tokenRequests.map(\.authorization) } == [nil])
            }
        }
    }

    @Test("a blob whose bytes do not match its digest, or that ends early, is rejected: no tag, no blob of the pull")
    func tamperedAndTruncated() async throws {
        let cases: [(FakeRegistry.BlobBehaviour, String)] = [
            (.tamper, "blob digest mismatch: expected"),
            (.shorten, "is truncated: the registry sent 50000 of 100000 bytes; nothing was stored"),
            (.cut, "is truncated: the connection ended after"),
        ]
        for (behaviour, message) in cases {
            try await TemporaryDirectory.with(prefix: "uni-tamper") { folder in
                let source = try ImageStore(root: folder.path + "/source")
                let image = try makeImage(in: source, as: "app:1", initrdBytes: 100_000)
                let initrd = try #require(try source.manifest(image.digest).layer(UniMediaType.initrd))
                let fake = FakeRegistry()
                try fake.add(image: image, from: source, tag: "1", layerBehaviour: behaviour)
                try await fake.run { fake in
                    let store = try ImageStore(root: folder.path + "/images")
                    let reference = try ImageReference.parse("\(fake.registry)/app:1")
                    let error = await #expect(throws: UniError.self) { try await RegistryClient().pull(reference, into: store, insecure: true) { _ in } }
                    #expect(error?.message.hasPrefix("cannot pull \(reference): ") == true)
                    #expect(error?.message.contains(message) == true, "\(behaviour): \(error?.message ?? "")")
                    if behaviour == .tamper { #expect(error?.message.contains(initrd.digest) == true) }
                    #expect(try store.images().isEmpty)
                    #expect(storedBlobs(store).isEmpty)  // nor the config and kernel it had written
                    #expect(try FileManager.default.contentsOfDirectory(atPath: store.root + "/tmp").isEmpty)
                }
            }
        }
    }

    @Test("a docker image is not a Uni image: the message names its media types")
    func dockerImage() async throws {
        let manifest = #"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}]}"#
        let fake = FakeRegistry()
        fake.add(manifest: Data(manifest.utf8), mediaType: "application/vnd.docker.distribution.manifest.v2+json", tag: "latest")
        try await TemporaryDirectory.with(prefix: "uni-docker") { folder in
            try await fake.run { fake in
                let store = try ImageStore(root: folder.path + "/images")
                let error = await #expect(throws: UniError.self) {
                    try await RegistryClient().pull(try ImageReference.parse("\(fake.registry)/library/nginx"), into: store, insecure: true) { _ in }
                }
                #expect(error?.message == "cannot pull \(fake.registry)/library/nginx:latest: not a Uni image: its manifest is application/vnd.docker.distribution.manifest.v2+json with config application/vnd.docker.container.image.v1+json and layers application/vnd.docker.image.rootfs.diff.tar.gzip; a Uni image is an OCI manifest with config application/vnd.uni.image.config.v1+json")
                #expect(storedBlobs(store).isEmpty)
            }
        }
    }

    @Test("a registry that stops sending: the stall timeout ends the pull with a line naming it")
    func stall() async throws {
        try await TemporaryDirectory.with(prefix: "uni-stall") { folder in
            let source = try ImageStore(root: folder.path + "/source")
            let image = try makeImage(in: source, as: "app:1", initrdBytes: 10_000)
            let fake = FakeRegistry()
            try fake.add(image: image, from: source, tag: "1", layerBehaviour: .stall)
            try await fake.run { fake in
                let store = try ImageStore(root: folder.path + "/images")
                let client = RegistryClient(configuration: RegistryClientConfiguration(stallTimeout: .milliseconds(700)))
                let started = ContinuousClock.now
                let error = await #expect(throws: UniError.self) {
                    try await client.pull(try ImageReference.parse("\(fake.registry)/app:1"), into: store, insecure: true) { _ in }
                }
                #expect(ContinuousClock.now - started < .seconds(10))
                #expect(error?.message.hasSuffix("registry \(fake.registry) stalled: nothing received or sent for 0.7 s (stall timeout)") == true, "\(error?.message ?? "")")
                #expect(try store.images().isEmpty)
            }
        }
    }

    @Test("a closed port: registry unreachable, naming host:port")
    func unreachable() async throws {
        let port = try freePort()
        try await TemporaryDirectory.with(prefix: "uni-closed") { folder in
            let store = try ImageStore(root: folder.path + "/images")
            let reference = try ImageReference.parse("127.0.0.1:\(port)/app:1")
            let error = await #expect(throws: UniError.self) { try await RegistryClient().pull(reference, into: store, insecure: true) { _ in } }
            #expect(error?.code == .unavailable)
            #expect(error?.message == "cannot pull \(reference): cannot reach registry 127.0.0.1:\(port): connection refused")
            let image = try makeImage(in: store, as: "app:1", initrdBytes: 1000)
            let push = await #expect(throws: UniError.self) { try await RegistryClient().push(image, from: store, to: reference, insecure: false) { _ in } }
            #expect(push?.message == "cannot push app:1 to \(reference): cannot reach registry 127.0.0.1:\(port): connection refused")
            let local = await #expect(throws: UniError.self) { try await RegistryClient().push(image, from: store, to: try ImageReference.parse("app:2"), insecure: true) { _ in } }
            #expect(local?.message == "cannot push app:1 to app:2: the destination 'app:2' names no registry: use REGISTRY/REPOSITORY[:TAG], e.g. localhost:5000/app")
        }
    }
}

@Suite("Registry credentials and challenges")
struct RegistryCredentialTests {
    @Test("credentials are saved per registry in a 0600 file, replaced, listed and removed")
    func credentialStore() throws {
        try TemporaryDirectory.withSync { folder in
            let store = RegistryCredentialStore(dataDirectory: DataDirectory(root: folder.path))
            #expect(try store.credentials(for: "Reg.example:5000") == nil)
            try store.save(RegistryCredentials(username: "a", password: "1"), for: "Reg.example:5000")
            try store.save(RegistryCredentials(username: "b", password: "2"), for: "other.example")
            try store.save(RegistryCredentials(username: "a", password: "3"), for: "reg.example:5000")
            #expect(try store.credentials(for: "reg.example:5000") == RegistryCredentials(username: "a", password: "3"))
            #expect(try store.registries() == ["other.example", "reg.example:5000"])
            var status = stat()
            #expect(stat(folder.path + "/registry-auth.json", &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
            #expect(try store.remove(registry: "other.example"))
            #expect(try !store.remove(registry: "other.example"))
            #expect(try store.registries() == ["reg.example:5000"])
            #expect(throws: UniError.invalid("invalid registry 'not a host': expected HOST or HOST:PORT")) {
                try store.save(RegistryCredentials(username: "a", password: "1"), for: "not a host")
            }
            #expect(throws: UniError.invalid("invalid registry user name 'a:b': it must be non-empty and have no ':'")) {
                try store.save(RegistryCredentials(username: "a:b", password: "1"), for: "reg.example")
            }
            #expect("\(RegistryCredentials(username: "a", password: "secret"))" == "RegistryCredentials(username: a)")
        }
    }

    @Test("WWW-Authenticate: quoted values with commas, several challenges, bare tokens")
    func challenges() {
        let parsed = RegistryAuthChallenge.parse(#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push", Basic realm=x"#)
        #expect(parsed == [
            RegistryAuthChallenge(scheme: "bearer", parameters: ["realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"]),
            RegistryAuthChallenge(scheme: "basic", parameters: ["realm": "x"]),
        ])
        #expect(RegistryAuthChallenge.parse("Basic").map(\.scheme) == ["basic"])
        #expect(RegistryAuthChallenge.parse(#"Bearer realm="a\"b""#).first?.parameters["realm"] == #"a"b"#)
    }
}

extension TemporaryDirectory {
    static func withSync<T>(_ body: (TemporaryDirectory) throws -> T) throws -> T {
        let directory = try TemporaryDirectory(prefix: "uni-creds")
        defer { directory.remove() }
        return try body(directory)
    }
}
