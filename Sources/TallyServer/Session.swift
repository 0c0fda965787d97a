import Foundation

/// Per-connection order: what a client pipelines on one connection takes effect as if run one
/// after another. A query sees every command sent before it on the connection (it waits until they
/// are committed) and none sent after it (those wait until it has read). Commands that follow one
/// another are never held back: the writer decides them in arrival order, and holding them would
/// defeat group commit; only a query between them separates them. Queries run one at a time, in
/// order (a long one reads off the event loop, and the reads after it wait for it).
final class Session: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`.
    private let lock = NSLock()
    private var commandsInFlight = 0
    /// Queries that have started and not finished (a slow one reads on another thread).
    private var queriesRunning = 0
    /// What waits its turn, in arrival order: queries behind commands in flight, commands behind
    /// running queries, and everything behind an earlier waiting item.
    private var waiting: [Item] = []
    /// Where released queries run (the connection's event loop), never on the writer thread.
    private let executor: @Sendable (@escaping @Sendable () -> Void) -> Void

    /// A query gets the closure to call once it has read (its reply may go out later).
    typealias Query = @Sendable (_ finished: @escaping @Sendable () -> Void) -> Void

    private enum Item {
        case commands(count: Int, submit: @Sendable () -> Void)
        case query(Query)
    }

    init(executor: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
        self.executor = executor
    }

    /// Runs `work` on the connection's event loop.
    func execute(_ work: @escaping @Sendable () -> Void) { executor(work) }

    /// Submits `count` commands with `submit` now, or once the queries sent before them have read.
    /// Each command calls `commandFinished()` when its reply is rendered.
    func submitCommands(_ count: Int, _ submit: @escaping @Sendable () -> Void) {
        lock.lock()
        guard waiting.isEmpty, queriesRunning == 0 else {
            waiting.append(.commands(count: count, submit: submit))
            lock.unlock()
            return
        }
        commandsInFlight += count
        lock.unlock()
        submit()
    }

    func commandFinished() {
        lock.lock()
        commandsInFlight -= 1
        precondition(commandsInFlight >= 0, "more commands finished than started")
        release()
    }

    /// Runs `query` now if no command sent before it is in flight and no query before it is
    /// still reading, else once they are done: a point read sent after a long read (which reads
    /// off the event loop) must not answer first, or the connection's reads would go back in time.
    func runQuery(_ query: @escaping Query) {
        lock.lock()
        guard waiting.isEmpty, commandsInFlight == 0, queriesRunning == 0 else {
            waiting.append(.query(query))
            lock.unlock()
            return
        }
        queriesRunning += 1
        lock.unlock()
        query(queryFinished)
    }

    private func queryFinished() {
        lock.lock()
        queriesRunning -= 1
        precondition(queriesRunning >= 0, "more queries finished than started")
        release()
    }

    /// Called with `lock` held; unlocks. Starts, in order, the waiting items whose turn has come.
    private func release() {
        var queries: [Query] = []
        var submits: [@Sendable () -> Void] = []
        while let first = waiting.first {
            switch first {
            case .query(let query):
                // One at a time, in order: the next is released when this one has read.
                guard commandsInFlight == 0, queriesRunning == 0 else { break }
                queriesRunning += 1
                queries.append(query)
                waiting.removeFirst()
                continue
            case .commands(let count, let submit):
                guard queriesRunning == 0 else { break }
                commandsInFlight += count
                submits.append(submit)
                waiting.removeFirst()
                continue
            }
            break
        }
        lock.unlock()
        for submit in submits { submit() }
        if !queries.isEmpty {
            executor { [self, queries] in for query in queries { query(queryFinished) } }
        }
    }
}
