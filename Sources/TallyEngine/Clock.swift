#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import TallyCore

/// The one source of time for the ledger's rules and for recordedAt. Injected so tests can move it.
public protocol LedgerClock: Sendable {
    func now() -> Timestamp
}

/// The real-time clock (CLOCK_REALTIME), microsecond precision.
public struct SystemClock: LedgerClock {
    public init() {}

    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(microsecondsSinceEpoch: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000)
    }
}
