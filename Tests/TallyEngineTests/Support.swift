import Foundation
import Logging
import RocksDB
import Synchronization
import TallyCore
import TallyEngine
import TallyStorage
#if canImport(Glibc)
import Glibc
#endif

/// A private temporary directory, removed on deinit.
final class TempDir {
    let path: String

    init() {
        var template = Array("/tmp/tally-engine.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: made!)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: Anchor.mirrorPath(in: path))  // beside it, when a ledger used it
    }
}

/// A clock the test moves by hand.
final class ManualClock: LedgerClock {
    private let current: Mutex<Int64>

    init(_ start: Timestamp = Timestamp(secondsSinceEpoch: 1_790_000_000)) {
        current = Mutex(start.microsecondsSinceEpoch)
    }

    func now() -> Timestamp { Timestamp(microsecondsSinceEpoch: current.withLock { $0 }) }

    func set(_ t: Timestamp) { current.withLock { $0 = t.microsecondsSinceEpoch } }

    func advance(seconds: Int64) { current.withLock { $0 += seconds * 1_000_000 } }
}

let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

func openLedger(_ dir: TempDir, clock: any LedgerClock = ManualClock()) throws -> Ledger {
    try Ledger(dataDirectory: dir.path, clock: clock, logger: quietLogger)
}

func provision(_ id: String, name: String? = nil, key: String? = nil) -> Command {
    .provisionCustomer(ProvisionCustomer(customerId: id, name: name.map { .set($0) } ?? .unchanged, idempotencyKey: key))
}

func fingerprint(_ text: String) -> [UInt8] { EventRecord.sha256(Array(text.utf8)) }

/// Submits all commands without waiting in between (so the writer can group them), then waits.
func submitAll(_ ledger: Ledger, _ commands: [(Command, IdempotencyClaim?)]) -> [CommandReply] {
    let replies = Mutex<[Int: CommandReply]>([:])
    let group = DispatchGroup()
    for (index, (command, claim)) in commands.enumerated() {
        group.enter()
        ledger.submit(command, idempotency: claim) { reply in
            replies.withLock { $0[index] = reply }
            group.leave()
        }
    }
    group.wait()
    return replies.withLock { r in (0..<commands.count).map { r[$0]! } }
}

extension CommandReply {
    var customer: Customer? {
        switch self {
        case .applied(.customer(let c, _)), .duplicate(.customer(let c, _)): c
        default: nil
        }
    }
}

/// Raw access to the database of a closed ledger, to damage it on purpose.
func withRawDatabase(_ dir: TempDir, _ body: (Database) throws -> Void) throws {
    let db = try Database(path: Ledger.databasePath(in: dir.path), columnFamilies: KeyLayout.columnFamilies)
    try body(db)
}
