import Foundation
public import Logging
public import TallyCore
import TallyStorage

/// Appends CREDITS_EXPIRED when grants' expireAt passes, and CREDITS_ACTIVATED when a scheduled
/// grant's effectiveAt does: a timer, not a side effect of queries. Its first tick, at start,
/// appends (in time order) what was missed while the daemon was stopped. It submits through the
/// single writer, like any command.
public final class ExpiryTimer: @unchecked Sendable {
    // @unchecked: `stopping` is guarded by `condition`; the rest is immutable.
    private let ledger: Ledger
    private let interval: TimeInterval
    private let logger: Logger
    private let condition = NSCondition()
    private var stopping = false
    private var thread: JoinableThread?

    public init(ledger: Ledger, intervalMilliseconds: Int = 250, logger: Logger) {
        self.ledger = ledger
        self.interval = TimeInterval(intervalMilliseconds) / 1000
        self.logger = logger
    }

    public func start() {
        thread = JoinableThread { [self] in run() }
    }

    /// Stops the timer and waits for its thread. Call before the ledger shuts down.
    public func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        thread?.join()
        thread = nil
    }

    private func run() {
        while true {
            tick()
            condition.lock()
            if !stopping { _ = condition.wait(until: Date().addingTimeInterval(interval)) }
            let done = stopping
            condition.unlock()
            if done { return }
        }
    }

    /// Submits an expiry command when a grant is due to expire or to be activated, and waits for it.
    public func tick() {
        let now = ledger.now
        let due: Bool
        do {
            let through = KeyLayout.sortable(now.adding(microseconds: 1))
            due = try !ledger.store.scan(from: KeyLayout.expiryPrefix, to: KeyLayout.expiryPrefix + through).isEmpty
                || !ledger.store.scan(from: KeyLayout.activationPrefix, to: KeyLayout.activationPrefix + through).isEmpty
        } catch {
            logger.error("expiry check failed", metadata: ["error": "\(error)"])
            return
        }
        guard due else { return }
        let done = DispatchSemaphore(value: 0)
        ledger.submit(.expireCredits, idempotency: nil) { [logger] reply in
            if case .applied(.expired(let count)) = reply, count > 0 {
                logger.info("credits expired", metadata: ["grants": "\(count)"])
            } else if case .unavailable(let message) = reply {
                logger.error("expiry failed", metadata: ["error": "\(message)"])
            }
            done.signal()
        }
        done.wait()
    }
}

/// A clock the tests move: real time plus an offset, or a fixed instant (tallyd --test-clock).
public final class AdjustableClock: LedgerClock, @unchecked Sendable {
    // @unchecked: `fixed` is guarded by `lock`.
    private let lock = NSLock()
    private var fixed: Timestamp?
    private let base = SystemClock()

    public init(start: Timestamp? = nil) { fixed = start }

    public func now() -> Timestamp {
        lock.lock()
        defer { lock.unlock() }
        return fixed ?? base.now()
    }

    /// Fixes the clock at `t` (time stands still until set again).
    public func set(_ t: Timestamp) {
        lock.lock()
        fixed = t
        lock.unlock()
    }
}
