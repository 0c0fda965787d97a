import Foundation

/// Per-connection ordering: a query waits until the commands sent before it on the same connection
/// are committed, so a client that pipelines "provision, then get" reads its own write. Commands
/// are never held back: the writer already decides them in arrival order, and holding them would
/// defeat group commit.
final class Session: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`.
    private let lock = NSLock()
    private var commandsInFlight = 0
    private var waitingQueries: [@Sendable () -> Void] = []
    /// Where held-back queries run once released (the connection's event loop), never on the writer thread.
    private let executor: @Sendable (@escaping @Sendable () -> Void) -> Void

    init(executor: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
        self.executor = executor
    }

    /// Runs `work` on the connection's event loop.
    func execute(_ work: @escaping @Sendable () -> Void) { executor(work) }

    func commandStarted() {
        lock.lock()
        commandsInFlight += 1
        lock.unlock()
    }

    func commandFinished() {
        lock.lock()
        commandsInFlight -= 1
        precondition(commandsInFlight >= 0, "more commands finished than started")
        let released = commandsInFlight == 0 ? waitingQueries : []
        if commandsInFlight == 0 { waitingQueries.removeAll() }
        lock.unlock()
        if !released.isEmpty {
            executor { for query in released { query() } }
        }
    }

    /// Runs `query` now if no command of this connection is in flight, else once they are done.
    func runQuery(_ query: @escaping @Sendable () -> Void) {
        lock.lock()
        guard commandsInFlight > 0 else {
            lock.unlock()
            query()
            return
        }
        waitingQueries.append(query)
        lock.unlock()
    }
}
