import Synchronization
import UniKit

/// A place where a fake backend stops until the test lets it go: races
/// are tested by holding one operation at a known point, starting the
/// other, and releasing the first, with no sleeps and no timing luck.
public final class SuspensionPoint: Sendable {
    private let reached = OneShot<Void>()
    private let released = OneShot<Void>()

    /// A point nobody has reached yet.
    public init() {}

    /// Waits until the fake has arrived at this point (and is held there).
    public func waitUntilReached() async { await reached.wait() }

    /// Whether the fake has arrived at this point.
    public var isReached: Bool { reached.value != nil }

    /// Lets the held operation go on.
    public func release() { released.resolve(()) }

    /// Called by the fake: marks the point reached and waits for ``release()``.
    func suspend() async {
        reached.resolve(())
        await released.wait()
    }
}
