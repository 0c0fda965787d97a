#if canImport(Glibc)
import Glibc
#endif

/// A thread that can be joined. Foundation's `Thread` cannot, and the writer must be gone, with
/// every reference it held, before the database is closed or reopened.
final class JoinableThread: @unchecked Sendable {
    // @unchecked: `handle` is written once in init, before any other thread can see it, and read
    // by `join` only.
    private var handle = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&handle, nil, { raw in
            let body = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body
            body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    /// Waits until the thread has returned.
    func join() {
        let result = pthread_join(handle, nil)
        precondition(result == 0, "pthread_join failed: \(result)")
    }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
