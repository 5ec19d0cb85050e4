import Testing

/// Every suite that boots real QEMU or runs the real binaries, one suite
/// at a time. On a 2-core machine suites that each boot guests under TCG
/// starve one another (a Linux boot took minutes), and their blocking
/// waits on child processes hold the two threads of Swift's cooperative
/// pool that every other test needs; one at a time, while the unit tests
/// run beside them, every wait stays far from its deadline.
@Suite("Integration (real QEMU and binaries)", .serialized)
enum Integration {}
