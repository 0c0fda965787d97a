import ArgumentParser
import TallyCore
import TallyProtocol

/// Option values checked before anything is sent, with the daemon's own parsers: a value the
/// daemon would refuse is refused here (exit 64) with the reason.
enum Checked {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// An RFC 3339 timestamp as the daemon takes it (4-digit year, seconds, `Z` or `±hh:mm`).
    static func timestamp(_ text: String) throws -> String {
        do {
            _ = try Timestamp(parsingRFC3339: text)
        } catch {
            throw Invalid(description: "not an RFC 3339 timestamp like 2026-11-01T00:00:00Z (\(error.reason))")
        }
        return text
    }

    /// A reset period as the daemon takes it (DAY, WEEK, MONTH or YEAR), in any case.
    static func period(_ text: String) throws -> String {
        guard let period = CalendarPeriod(rawValue: text.uppercased()), Params.resetPeriods.contains(period) else {
            throw Invalid(description: "must be " + Params.resetPeriods.map(\.rawValue).joined(separator: ", "))
        }
        return text
    }

    /// Whether the daemon reads `text` as an amount (`12`, `0.5`, `1e3`).
    static func isAmount(_ text: String) -> Bool { (try? Amount(parsing: text)) != nil }

    /// An exact decimal as the daemon takes it (at most 12 fractional digits, below 10²¹): not
    /// negative unless `signed`, greater than 0 if `positive`.
    static func amount(_ text: String, _ what: String, positive: Bool = false, signed: Bool = false) throws {
        let value: Amount
        do {
            value = try Amount(parsing: text)
        } catch {
            throw ValidationError("\(what) must be an exact decimal like 100 or 12.5, got '\(text)' (\(error)).")
        }
        if positive, !value.isPositive { throw ValidationError("\(what) must be greater than 0, got '\(text)'.") }
        if !signed, value.isNegative { throw ValidationError("\(what) must not be negative, got '\(text)'.") }
    }
}
