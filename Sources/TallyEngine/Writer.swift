import Foundation
import Logging
import RocksDB
import TallyCore
import TallyStorage

/// The single writer. Commands queue here from every connection; the writer thread takes all that
/// are waiting (up to a group's limit), decides them in order against the stored state plus what
/// the group already decided, writes one WriteBatch with sync=true, and then completes them.
final class Writer: @unchecked Sendable {
    // @unchecked: `queue`, `stopping` and `committed` are guarded by `condition`; everything else
    // is touched only by the writer thread.
    struct Pending: @unchecked Sendable {
        var command: Command
        var idempotency: IdempotencyClaim?
        var completion: @Sendable (CommandReply) -> Void
    }

    private let store: LedgerStore
    private let clock: any LedgerClock
    private let limits: Ledger.Limits
    private let logger: Logger
    private let condition = NSCondition()
    private var queue: [Pending] = []
    private var stopping = false
    private var committed: Head
    private var thread: JoinableThread?
    /// Records read or committed by earlier groups; writer thread only.
    private let cache: WriterCache
    /// Set after a commit failed and the head could not be re-read: every later write is refused.
    private var failure: String?
    /// Called on the writer thread after each synced commit that appended events, with the new
    /// head (sequence, hash); set before `start()`. The ledger keeps its anchor file with it.
    var onCommit: (@Sendable (UInt64, [UInt8]) -> Void)?

    init(store: LedgerStore, clock: any LedgerClock, limits: Ledger.Limits, logger: Logger, head: Head) {
        self.store = store
        self.clock = clock
        self.limits = limits
        self.logger = logger
        self.committed = head
        self.cache = WriterCache(recordsMax: limits.cachedRecordsMax)
    }

    var committedHead: (sequence: UInt64, hash: [UInt8]) {
        condition.lock()
        defer { condition.unlock() }
        return (committed.sequence, committed.hash)
    }

    var committedRecordedAt: Timestamp {
        condition.lock()
        defer { condition.unlock() }
        return committed.recordedAt
    }

    func start() {
        thread = JoinableThread { [self] in run() }
    }

    func submit(_ pending: Pending) {
        condition.lock()
        if stopping {
            condition.unlock()
            pending.completion(.unavailable("the daemon is shutting down"))
            return
        }
        if queue.count >= limits.queuedCommandsMax {
            condition.unlock()
            pending.completion(.overloaded)
            return
        }
        queue.append(pending)
        condition.unlock()
        // After unlocking: a writer woken while the lock is still held would at once sleep again
        // on the lock (one more pair of context switches on every command's path).
        condition.signal()
    }

    /// Lets the queued commands finish, then stops the thread and waits until it has exited, so
    /// it holds nothing of the store any more. Idempotent.
    func stop() {
        condition.lock()
        let wasStopping = stopping
        stopping = true
        condition.signal()
        condition.unlock()
        if !wasStopping { thread?.join() }
    }

    private func run() {
        // Every write's memtable inserts compare keys; counting each comparison costs a
        // thread-local lookup in librocksdb, and no one reads the counts.
        PerfCounters.disableOnThisThread()
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                condition.unlock()
                return
            }
            let take = min(queue.count, limits.groupCommandsMax)
            let group = Array(queue.prefix(take))
            queue.removeFirst(take)
            let head = committed
            condition.unlock()

            let (replies, newHead, settled) = commit(group, head: head)
            if let newHead {
                condition.lock()
                committed = newHead
                condition.unlock()
            }
            for (pending, reply) in zip(group, replies) { pending.completion(reply) }
            // After the replies, off their path: the next group, on this thread, is the first to read it.
            settled?.keep(in: cache)
        }
    }

    /// Decides and commits one group. Returns a reply per command, the new head (nil if nothing
    /// was appended) and the group if what it read and set is now what RocksDB holds (nil after a
    /// failed commit), for the cache.
    private func commit(_ pendings: [Pending], head: Head) -> ([CommandReply], Head?, settled: GroupState?) {
        if let failure { return (pendings.map { _ in .unavailable(failure) }, nil, nil) }
        var group = GroupState(store: store, head: head, cache: cache)
        var replies: [CommandReply] = []
        for pending in pendings {
            // The decision time is the command's recordedAt: the clock's now, or the log's last
            // recordedAt when the clock is behind it (the clock stepped back), never before it.
            replies.append(group.decide(pending.command, idempotency: pending.idempotency, now: max(clock.now(), group.head.recordedAt)))
            if let failure = group.readFailure {
                // The failed command may have appended part of its events and projections to the
                // batch: none of the group is written, so nothing of it happened.
                let message: String
                if failure.isDamage {
                    // A retry reads the same bytes again: "retry" would be wrong advice.
                    message = "the database is damaged: \(failure), read while deciding this command or one committed with it; nothing was applied. \(Ledger.restoreAdvice)"
                    logger.critical("reading the ledger state failed: the database is damaged", metadata: ["error": "\(failure)", "commands": "\(pendings.count)"])
                } else {
                    message = "the ledger state could not be read (\(failure)) while deciding this command or one committed with it; nothing was applied: retry with the same idempotency key"
                    logger.error("reading the ledger state failed", metadata: ["error": "\(failure)", "commands": "\(pendings.count)"])
                }
                return (pendings.map { _ in .unavailable(message) }, nil, nil)
            }
        }
        group.writeProjections()
        guard !group.batch.isEmpty else { return (replies, nil, group) }
        if group.head.sequence > head.sequence { group.batch.setProjectionMark(sequence: group.head.sequence) }
        do {
            try store.commit(group.batch)
            if group.head.sequence > head.sequence { onCommit?(group.head.sequence, group.head.hash) }
            return (replies, group.head, group)
        } catch {
            // What the cache holds may no longer be what RocksDB holds (or it may: unknown).
            cache.removeAll()
            // Nothing of the group may be reported as done: the write's outcome is unknown, and the
            // group's other answers were decided against state that may not exist.
            var message = "the write failed, its outcome is unknown; retry with the same idempotency key (\(error))"
            if error.isDamage {
                // RocksDB refuses writes once a compaction or flush met a damaged block: retrying
                // will not help until the database is restored.
                message += ". The database is damaged: \(Ledger.restoreAdvice)"
                logger.critical("group commit failed: the database is damaged", metadata: ["error": "\(error)", "commands": "\(pendings.count)", "advice": "\(Ledger.restoreAdvice)"])
            } else {
                logger.error("group commit failed", metadata: ["error": "\(error)", "commands": "\(pendings.count)"])
            }
            resynchronize(after: error)
            return (pendings.map { _ in .unavailable(message) }, nil, nil)
        }
    }

    /// After a failed commit the batch may or may not be in the log. Re-read the head so the next
    /// group chains to what is really there; if even that fails, refuse all writes (the operator
    /// restarts the daemon, and recovery is exact).
    private func resynchronize(after error: StorageError) {
        do {
            let last = try store.lastEvent()
            let head = last.map { Head(sequence: $0.event.sequence, hash: $0.hash, recordedAt: $0.event.recordedAt) }
                ?? Head.empty
            condition.lock()
            committed = head
            condition.unlock()
        } catch {
            failure = "the ledger cannot write (\(error)); restart tallyd"
            logger.critical("writer disabled", metadata: ["error": "\(error)"])
        }
    }
}

/// What one group has decided so far: the batch, the head it reached, and the projection records
/// it changed, which later commands of the same group must see.
struct GroupState: ProjectionSink {
    let store: LedgerStore
    let batch: StoreBatch
    var head: Head
    /// What the group set (nil: removed), as set: bytes or decoded values.
    private var overlay: [ByteKey: ProjectionRecord?] = [:]
    private var idempotencyRecords: [ByteKey: IdempotencyRecord] = [:]
    /// Set when a decision failed to read (or decode) a record: the batch may then hold part of
    /// that command, and must not be written.
    private(set) var readFailure: StorageError?
    /// What earlier groups read and committed: read before RocksDB, changed only between groups.
    private let cache: WriterCache

    init(store: LedgerStore, head: Head, cache: WriterCache) {
        self.store = store
        self.batch = store.makeBatch()
        self.head = head
        self.cache = cache
    }

    func projection(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        try projectionRecord(key)?.bytes
    }

    func projectionRecord(_ key: [UInt8]) throws(StorageError) -> ProjectionRecord? {
        let byteKey = ByteKey(key)
        if let known = overlay[byteKey] { return known }
        if let cached = reads.values[byteKey] { return cached }
        if let kept = cache[byteKey] { return kept }
        let stored = try store.projection(key).map { ProjectionRecord.bytes($0) }
        reads.values[byteKey] = .some(stored)
        return stored
    }

    /// A record decoded from the store's bytes is kept decoded for the rest of the group, and (one
    /// read from the writer's cache too) for later groups: the cache takes the group's reads.
    func rememberDecoded(_ key: [UInt8], _ value: DecodedProjection) {
        let byteKey = ByteKey(key)
        guard overlay[byteKey] == nil, reads.values[byteKey] != nil || cache[byteKey] != nil else { return }
        reads.values[byteKey] = .some(.decoded(value))
    }

    /// Hands what this group read from RocksDB and what it changed to the writer's cache, once
    /// they are committed (or when the group wrote nothing).
    func keep(in cache: WriterCache) {
        cache.absorb(reads: reads.values, changes: overlay)
    }

    /// Records this group read from RocksDB (or decoded from the writer's cache) and did not change: the customer, the feature and its meter index
    /// are read for every event of a batch. A class, so that reading stays non-mutating.
    private final class ReadCache {
        var values: [ByteKey: ProjectionRecord?] = [:]
    }

    private let reads = ReadCache()

    /// The records this group has set or removed (nil), for scans.
    var overlayEntries: [(key: [UInt8], value: [UInt8]?)] { overlay.map { ($0.key.bytes, $0.value?.bytes) } }

    /// Records the change in the group's overlay; `writeProjections()` puts the final value of each
    /// key into the batch once, however often the group changed it (a batch of events on one
    /// customer updates the same usage cells again and again).
    mutating func setProjection(_ key: [UInt8], _ value: [UInt8]?) {
        overlay[ByteKey(key)] = .some(value.map { .bytes($0) })
    }

    mutating func setProjection(_ key: [UInt8], decoded value: DecodedProjection) {
        overlay[ByteKey(key)] = .some(.decoded(value))
    }

    /// Puts every projection record the group changed into the batch, encoded once. Called once,
    /// before commit.
    func writeProjections() {
        // `value` nil means the group removed the record.
        for (key, value) in overlay { batch.setProjection(key.bytes, value?.bytes) }
    }

    mutating func decide(_ command: Command, idempotency: IdempotencyClaim?, now: Timestamp) -> CommandReply {
        do {
            let scope = try idempotencyScope(of: command)
            if let claim = idempotency {
                if let seen = try idempotencyRecord(family: scope.family, customerId: scope.customerId, key: claim.key) {
                    guard seen.fingerprint == claim.fingerprint else {
                        return .rejected(Rejection(.idempotencyConflict, "idempotency key \"\(claim.key)\" was already used with different params"))
                    }
                    return .duplicate(seen.result)
                }
            }
            let result: CommandResult
            switch command {
            case .provisionCustomer(let c):
                let existing = try Projections.customer(c.customerId, in: self)
                try append(Rules.provisionCustomer(c, existing: existing), now: now)
                guard let customer = try Projections.customer(c.customerId, in: self) else {
                    preconditionFailure("provisionCustomer left no customer")
                }
                // Its subscriptions as they stand at this decision: a retry answers these, not
                // whatever they have become since. A new customer has none (they need a customer).
                let subscriptions = existing == nil ? [] : try Projections.subscriptions(customerId: customer.id, in: self).map { s throws(StorageError) in
                    CustomerSubscription(subscription: s, planName: try Projections.plan(s.planId, in: self)?.displayName)
                }
                result = .customer(customer, subscriptions: subscriptions)
            default:
                switch try decideCatalogOrUsage(command, idempotencyKey: idempotency?.key, now: now) {
                case .success(let value): result = value
                case .failure(let rejection): return .rejected(rejection)
                }
            }
            if let claim = idempotency {
                remember(IdempotencyRecord(fingerprint: claim.fingerprint, result: result), family: scope.family, customerId: scope.customerId, key: claim.key)
            }
            return .applied(result)
        } catch {
            readFailure = error
            return .unavailable("could not read the ledger state: \(error)")
        }
    }

    /// The record of an idempotency key: decided earlier in this group, or committed before.
    func idempotencyRecord(family: String, customerId: String, key: String) throws(StorageError) -> IdempotencyRecord? {
        if let decided = idempotencyRecords[ByteKey(KeyLayout.idempotencyKey(family: family, customerId: customerId, key: key))] { return decided }
        return try store.idempotencyRecord(family: family, customerId: customerId, key: key)
    }

    /// Records a key's answer in the batch, and for the group's later commands.
    mutating func remember(_ record: IdempotencyRecord, family: String, customerId: String, key: String) {
        idempotencyRecords[ByteKey(KeyLayout.idempotencyKey(family: family, customerId: customerId, key: key))] = record
        batch.put(record, family: family, customerId: customerId, key: key)
    }

    /// Keys are scoped per method family and customer. Void and cancel name no customer, so their
    /// scope is the customer of the grant or subscription they name.
    private func idempotencyScope(of command: Command) throws(StorageError) -> (family: String, customerId: String) {
        var scope = command.idempotencyScope
        switch command {
        case .voidCreditGrant(let grantId):
            if let grant = try Projections.grant(grantId, in: self) { scope.customerId = grant.customerId }
        case .cancelSubscription(let subscriptionId):
            if let subscription = try Projections.subscription(subscriptionId, in: self) { scope.customerId = subscription.customerId }
        default:
            break
        }
        return scope
    }

    /// Appends events to the batch, chained to the group's head, and folds each into the projections.
    mutating func append(_ payloads: [EventPayload], now: Timestamp) throws(StorageError) {
        for payload in payloads {
            // recordedAt never goes backwards, even if the wall clock does.
            let recordedAt = max(now, head.recordedAt)
            let record = EventRecord(sequence: head.sequence + 1, recordedAt: recordedAt, payload: payload, prevHash: head.hash)
            batch.append(record)
            head = Head(sequence: record.event.sequence, hash: record.hash, recordedAt: recordedAt)
            try Projector.apply(record.event, to: &self)
        }
    }
}
