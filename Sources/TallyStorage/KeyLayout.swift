#if canImport(Glibc)
import Glibc
#endif
public import TallyCore

/// Every key Tally stores, in one place.
///
/// Column families:
/// - `events`: `seq (u64 big-endian)` → event record. The log; append-only.
/// - `projections`: derived state, rebuilt from the log when missing or behind.
///   - `c\0<customerId>` → Customer record
/// - `idempotency`: `<family>\0<customerId>\0<key>` → fingerprint (32 bytes) + result record. Kept forever.
/// - `meta` (the default CF): `projection.sequence` → u64 BE, the last event folded into the
///   projections; `projection.version` → u32 BE, the projection layout version.
public enum KeyLayout {
    public static let eventsFamily = "events"
    public static let projectionsFamily = "projections"
    public static let idempotencyFamily = "idempotency"
    public static let metaFamily = "default"
    public static let columnFamilies = [eventsFamily, projectionsFamily, idempotencyFamily]

    /// Bump when the projection records or keys change: the next start rebuilds them from the log.
    public static let projectionVersion: UInt32 = 7

    public static let projectionSequenceKey = Array("projection.sequence".utf8)
    public static let projectionVersionKey = Array("projection.version".utf8)
    /// A ledger restored from a snapshot goes on from the snapshot's sequence, so the sequences
    /// (and ids made of them) of the events lost with the restore come again: the restore sets
    /// this tag (meta family), and the ids the daemon makes up carry it (`LedgerStore.generatedId`).
    public static let lineageKey = Array("ledger.lineage".utf8)

    public static func eventKey(_ sequence: UInt64) -> [UInt8] { bigEndian(sequence) }

    public static func sequence(fromEventKey key: [UInt8]) -> UInt64? {
        guard key.count == 8 else { return nil }
        return key.reduce(0) { $0 << 8 | UInt64($1) }
    }

    static let customerPrefix: [UInt8] = [UInt8(ascii: "c"), 0]

    public static func customerKey(_ customerId: String) -> [UInt8] { KeyBuilder("c").part(customerId).bytes }

    /// The half-open range of all customer keys.
    public static let customerRange: (lower: [UInt8], upper: [UInt8]) = (customerPrefix, [UInt8(ascii: "c"), 1])

    public static func customerId(fromKey key: [UInt8]) -> String? {
        guard key.starts(with: customerPrefix) else { return nil }
        return String(validating: key[customerPrefix.count...], as: UTF8.self)
    }

    public static func idempotencyKey(family: String, customerId: String, key: String) -> [UInt8] {
        KeyBuilder(family).part(customerId).part(key).bytes
    }

    public static func bigEndian(_ value: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8)
        appendBigEndian(value, to: &bytes)
        return bytes
    }

    static func appendBigEndian(_ value: UInt64, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public static func uint64(bigEndian bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Catalog, usage and entitlement projection keys. Every key starts with a short tag and a NUL;
/// ids never contain NUL (Identifier), so the parts cannot run into each other.
///
/// - `$\0<currencyId>` → Currency
/// - `f\0<featureId>` → Feature (the current version)
/// - `m\0<eventName>` → the ids of the features whose meter reads this event
/// - `p\0<planId>` → Plan
/// - `s\0<subscriptionId>` → Subscription
/// - `cs\0<customerId>…`, `csi\0…` → NumberedSet of the customer's subscriptions, in provisioning
///   order (never removed from)
/// - `ep\0<customerId>…`, `epi\0…` → NumberedSet of the plans the customer has an ACTIVE or TRIAL
///   subscription to (the plans that may entitle it; a TRIAL may have ended)
/// - `es\0<customerId>\0<planId>…`, `esi\0…` → NumberedSet of those subscriptions of the plan
/// - `pe\0<customerId>\0<featureId>` → PromotionalEntitlement
/// - `ut\0<customerId>\0<featureId>\0<resourceId>\0<period>\0<start>` → UsageCell (period total, no dimensions)
/// - `us\0<customerId>\0<featureId>\0<granularity>\0<start>\0<resourceId>\0<dimensions>` → UsageCell (time series)
/// - `uu\0<cell key>\0<value>` → empty: a value already counted by a UNIQUE_COUNT cell
/// - `dk\0<customerId>\0<dimension key>` → empty: dimension keys seen on the customer's usage
extension KeyLayout {
    static func key(_ tag: String, _ parts: [String]) -> [UInt8] {
        var key = KeyBuilder(tag)
        for part in parts { key = key.part(part) }
        return key.bytes
    }

    public static func currencyKey(_ id: String) -> [UInt8] { key("$", [id]) }
    public static func featureKey(_ id: String) -> [UInt8] { key("f", [id]) }
    public static func meterIndexKey(eventName: String) -> [UInt8] { key("m", [eventName]) }
    public static func planKey(_ id: String) -> [UInt8] { key("p", [id]) }
    public static func subscriptionKey(_ id: String) -> [UInt8] { key("s", [id]) }
    public static func promotionalKey(customerId: String, featureId: String) -> [UInt8] { key("pe", [customerId, featureId]) }
    public static func promotionalPrefix(customerId: String) -> [UInt8] { key("pe", [customerId]) + [0] }
    public static func dimensionKeyKey(customerId: String, key dimension: String) -> [UInt8] { key("dk", [customerId, dimension]) }
    public static func dimensionKeyPrefix(customerId: String) -> [UInt8] { key("dk", [customerId]) + [0] }

    /// A timestamp as 8 bytes that sort like the instants (sign bit flipped, big-endian).
    public static func sortable(_ t: Timestamp) -> [UInt8] {
        bigEndian(sortableBits(t))
    }

    static func sortableBits(_ t: Timestamp) -> UInt64 { UInt64(bitPattern: t.microsecondsSinceEpoch) ^ (1 << 63) }

    public static func timestamp(sortable bytes: ArraySlice<UInt8>) -> Timestamp? {
        guard bytes.count == 8 else { return nil }
        let raw = bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } ^ (1 << 63)
        return Timestamp(microsecondsSinceEpoch: Int64(bitPattern: raw))
    }

    /// One byte per period; all-time totals use "A".
    public static func periodTag(_ period: CalendarPeriod?) -> UInt8 {
        switch period {
        case .minute?: UInt8(ascii: "i")
        case .hour?: UInt8(ascii: "h")
        case .day?: UInt8(ascii: "d")
        case .week?: UInt8(ascii: "w")
        case .month?: UInt8(ascii: "m")
        case .year?: UInt8(ascii: "y")
        case nil: UInt8(ascii: "A")
        }
    }

    public static func usageTotalKey(customerId: String, featureId: String, resourceId: String?, period: CalendarPeriod?, start: Timestamp) -> [UInt8] {
        KeyBuilder("ut").part(customerId).part(featureId).part(resourceId ?? "").part(tag: periodTag(period)).separator().sortable(start).bytes
    }

    /// Prefix of every series cell of one granularity, for range scans by bucket start. `whole`
    /// cells (UNIQUE_COUNT only) count each value once per bucket across all dimension sets; their
    /// tag is the period's letter in upper case.
    public static func usageSeriesPrefix(customerId: String, featureId: String, granularity: CalendarPeriod, whole: Bool = false) -> [UInt8] {
        seriesPrefix(customerId: customerId, featureId: featureId, granularity: granularity, whole: whole).bytes
    }

    private static func seriesPrefix(customerId: String, featureId: String, granularity: CalendarPeriod, whole: Bool) -> KeyBuilder {
        let tag = periodTag(granularity)
        return KeyBuilder("us").part(customerId).part(featureId).part(tag: whole ? tag - 32 : tag).separator()
    }

    public static func usageSeriesKey(customerId: String, featureId: String, granularity: CalendarPeriod, start: Timestamp, resourceId: String?, dimensions: Dimensions, whole: Bool = false) -> [UInt8] {
        usageSeriesKey(customerId: customerId, featureId: featureId, granularity: granularity, start: start, resourceId: resourceId, canonicalDimensions: dimensions.canonicalBytes, whole: whole)
    }

    /// The same, with the dimensions already encoded (`Dimensions.canonicalBytes`), for the
    /// several cells one contribution updates.
    public static func usageSeriesKey(customerId: String, featureId: String, granularity: CalendarPeriod, start: Timestamp, resourceId: String?, canonicalDimensions: [UInt8], whole: Bool = false) -> [UInt8] {
        seriesPrefix(customerId: customerId, featureId: featureId, granularity: granularity, whole: whole)
            .sortable(start).part(resourceId ?? "").part(canonicalDimensions).bytes
    }

    /// Splits the part of a series key after its prefix: bucket start, resource, dimensions.
    public static func usageSeriesParts(_ key: [UInt8], prefixCount: Int) -> (start: Timestamp, resourceId: String?, dimensions: Dimensions)? {
        let rest = key[(key.startIndex + prefixCount)...]
        guard rest.count >= 10, let start = timestamp(sortable: rest.prefix(8)) else { return nil }
        let afterStart = rest.dropFirst(9)
        guard let separator = afterStart.firstIndex(of: 0) else { return nil }
        let resource = String(decoding: afterStart[afterStart.startIndex..<separator], as: UTF8.self)
        guard let dimensions = try? Dimensions.decode(canonical: Array(afterStart[(separator + 1)...])) else { return nil }
        return (start, resource.isEmpty ? nil : resource, dimensions)
    }

    public static func uniqueMemberKey(cell: [UInt8], value: String) -> [UInt8] {
        KeyBuilder("uu", capacity: cell.count + value.utf8.count + 8).part(cell).part(value).bytes
    }
}

/// Credit projection keys.
///
/// - `cg\0<grantId>` → CreditGrant
/// - `cgl\0<customerId>\0<grantId>` → empty: a customer's grants
/// - `cp\0<customerId>\0<currencyId>\0<resourceId or "">` → CreditPool
/// - `cl\0<customerId>\0<sequence u64 BE>` → CreditLedgerEntry
/// - `cx\0<expireAt sortable><sequence u64 BE><grantId>` → empty: the expiry schedule of open grants
/// - `ca\0<effectiveAt sortable><sequence u64 BE><grantId>` → empty: the activation schedule of
///   grants scheduled when granted and not activated yet
/// - `cu\0<customerId>\0<currencyId>\0<granularity>\0<start>\0<resourceId>\0<featureId>\0<dimensions>` → UsageCell of credits consumed
/// - `ar\0<customerId>\0<currencyId>` → AutoRecharge
/// - `arm\0<customerId>\0<currencyId>\0<month start>` → Amount recharged that calendar month
extension KeyLayout {
    public static func grantKey(_ grantId: String) -> [UInt8] { key("cg", [grantId]) }
    public static func customerGrantKey(customerId: String, grantId: String) -> [UInt8] { key("cgl", [customerId, grantId]) }
    public static func customerGrantPrefix(customerId: String) -> [UInt8] { key("cgl", [customerId]) + [0] }
    public static func creditPoolKey(customerId: String, currencyId: String, resourceId: String?) -> [UInt8] { key("cp", [customerId, currencyId, resourceId ?? ""]) }
    public static func creditPoolPrefix(customerId: String) -> [UInt8] { key("cp", [customerId]) + [0] }
    public static func creditLedgerKey(customerId: String, sequence: UInt64) -> [UInt8] { KeyBuilder("cl").part(customerId).separator().bigEndian(sequence).bytes }
    public static func creditLedgerPrefix(customerId: String) -> [UInt8] { key("cl", [customerId]) + [0] }
    public static let expiryPrefix: [UInt8] = Array("cx".utf8) + [0]
    /// Ordered by expireAt, then by the grant's sequence: grants expiring at the same instant
    /// expire in the order they were granted (their ids do not sort numerically).
    public static func expiryKey(expireAt: Timestamp, sequence: UInt64, grantId: String) -> [UInt8] {
        scheduleKey("cx", at: expireAt, sequence: sequence, grantId: grantId)
    }

    /// The grant id of an expiry schedule key.
    public static func grantId(fromExpiryKey key: [UInt8]) -> String? { grantId(fromScheduleKey: key, prefix: expiryPrefix) }

    public static let activationPrefix: [UInt8] = Array("ca".utf8) + [0]
    /// Ordered like the expiry schedule: by effectiveAt, then by the grant's sequence.
    public static func activationKey(effectiveAt: Timestamp, sequence: UInt64, grantId: String) -> [UInt8] {
        scheduleKey("ca", at: effectiveAt, sequence: sequence, grantId: grantId)
    }

    /// `<tag>\0<instant sortable><sequence u64 BE><grantId>`: a grant's place in a time schedule.
    private static func scheduleKey(_ tag: String, at instant: Timestamp, sequence: UInt64, grantId: String) -> [UInt8] {
        var key = KeyBuilder(tag).separator().sortable(instant).bigEndian(sequence)
        key.bytes.append(contentsOf: grantId.utf8)
        return key.bytes
    }

    /// The grant id of an activation schedule key.
    public static func grantId(fromActivationKey key: [UInt8]) -> String? { grantId(fromScheduleKey: key, prefix: activationPrefix) }

    private static func grantId(fromScheduleKey key: [UInt8], prefix: [UInt8]) -> String? {
        let start = prefix.count + 16
        guard key.count > start, key.starts(with: prefix) else { return nil }
        return String(validating: key[start...], as: UTF8.self)
    }
    public static func creditUsagePrefix(customerId: String, currencyId: String, granularity: CalendarPeriod) -> [UInt8] {
        creditUsagePrefixBuilder(customerId: customerId, currencyId: currencyId, granularity: granularity).bytes
    }
    private static func creditUsagePrefixBuilder(customerId: String, currencyId: String, granularity: CalendarPeriod) -> KeyBuilder {
        KeyBuilder("cu").part(customerId).part(currencyId).part(tag: periodTag(granularity)).separator()
    }
    public static func creditUsageKey(customerId: String, currencyId: String, granularity: CalendarPeriod, start: Timestamp, resourceId: String?, featureId: String, dimensions: Dimensions) -> [UInt8] {
        creditUsagePrefixBuilder(customerId: customerId, currencyId: currencyId, granularity: granularity)
            .sortable(start).part(resourceId ?? "").part(featureId).part(dimensions.canonicalBytes).bytes
    }

    /// Splits a credit usage key after its prefix: bucket start, resource, feature, dimensions.
    public static func creditUsageParts(_ key: [UInt8], prefixCount: Int) -> (start: Timestamp, resourceId: String?, featureId: String, dimensions: Dimensions)? {
        let rest = key[(key.startIndex + prefixCount)...]
        guard rest.count >= 11, let start = timestamp(sortable: rest.prefix(8)) else { return nil }
        let afterStart = rest.dropFirst(9)
        guard let s1 = afterStart.firstIndex(of: 0) else { return nil }
        let resource = String(decoding: afterStart[afterStart.startIndex..<s1], as: UTF8.self)
        let afterResource = afterStart[(s1 + 1)...]
        guard let s2 = afterResource.firstIndex(of: 0) else { return nil }
        let feature = String(decoding: afterResource[afterResource.startIndex..<s2], as: UTF8.self)
        guard let dimensions = try? Dimensions.decode(canonical: Array(afterResource[(s2 + 1)...])) else { return nil }
        return (start, resource.isEmpty ? nil : resource, feature, dimensions)
    }

    public static func autoRechargeKey(customerId: String, currencyId: String) -> [UInt8] { key("ar", [customerId, currencyId]) }
    public static func rechargeSpendKey(customerId: String, currencyId: String, monthStart: Timestamp) -> [UInt8] {
        KeyBuilder("arm").part(customerId).part(currencyId).separator().sortable(monthStart).bytes
    }
}

/// Builds a key in one buffer: a tag, then parts each after a NUL (no intermediate arrays).
struct KeyBuilder {
    var bytes: [UInt8]

    init(_ tag: String, capacity: Int = 96) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(contentsOf: tag.utf8)
    }

    // `consuming`: a chain of calls on a temporary appends to one buffer, never copying it.

    /// A NUL, then the part's bytes.
    consuming func part(_ text: String) -> KeyBuilder {
        bytes.append(0)
        bytes.append(contentsOf: text.utf8)
        return self
    }

    consuming func part(_ raw: [UInt8]) -> KeyBuilder {
        bytes.append(0)
        bytes.append(contentsOf: raw)
        return self
    }

    /// A NUL, then one tag byte.
    consuming func part(tag: UInt8) -> KeyBuilder {
        bytes.append(0)
        bytes.append(tag)
        return self
    }

    consuming func separator() -> KeyBuilder {
        bytes.append(0)
        return self
    }

    consuming func sortable(_ t: Timestamp) -> KeyBuilder { bigEndian(KeyLayout.sortableBits(t)) }

    consuming func bigEndian(_ value: UInt64) -> KeyBuilder {
        KeyLayout.appendBigEndian(value, to: &bytes)
        return self
    }
}

/// A byte-string dictionary key hashed in one call: `[UInt8]` hashes byte by byte, which showed
/// up as a quarter of replay time (docs/performance.md).
public struct ByteKey: Hashable, Sendable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func == (a: ByteKey, b: ByteKey) -> Bool {
        guard a.bytes.count == b.bytes.count else { return false }
        // One memcmp, not an element-by-element Array comparison (9 % of replay).
        return a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in
                x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0
            }
        }
    }
}
