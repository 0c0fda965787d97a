/// Unicode sparklines for `tally usage history`.
///
/// Amounts arrive as exact decimal strings; they become Doubles here only to choose a bar height.
/// Every number printed is the daemon's own string.
enum Sparkline {
    static let levels: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    /// Drawn for a slot with no data.
    static let gap: Character = "·"

    /// One character per value, scaled from min(0, smallest) to the largest; nil is a gap.
    static func render(_ values: [Double?]) -> String {
        let present = values.compactMap { $0 }
        guard let high = present.max(), let smallest = present.min() else {
            return String(repeating: gap, count: values.count)
        }
        let low = min(0, smallest)
        let span = high - low
        return String(values.map { value -> Character in
            guard let value else { return gap }
            guard span > 0, span.isFinite else { return value == 0 ? levels[0] : levels[levels.count / 2] }
            let level = Int(((value - low) / span * Double(levels.count - 1)).rounded())
            return levels[min(max(level, 0), levels.count - 1)]
        })
    }
}

/// A series of usage-history points as a labelled sparkline, buckets placed on the time axis.
enum UsageChart {
    /// The widest sparkline; longer ranges fold several buckets into a column (their peak).
    static let widthMax = 60

    static func render(
        label: String, samples: [(timestamp: String, value: String)], total: String,
        granularity: UsageHistoryCommand.Granularity
    ) -> String {
        // Peak: the largest value, printed as the daemon wrote it, chosen exactly (as Doubles,
        // values that differ in the 12th fractional digit of 10^19 would compare equal).
        var peak = samples.first?.value ?? ""
        for sample in samples.dropFirst() where DecimalText.isLess(peak, sample.value) { peak = sample.value }
        let slots = samples.map { slot(of: $0.timestamp, granularity) }
        let placed = slots.compactMap { $0 }
        let line: String
        var note = ""
        if placed.count == slots.count, let first = placed.first, let last = placed.last, last >= first {
            let count = last - first + 1
            let perColumn = max(1, (count + widthMax - 1) / widthMax)
            var columns = [Double?](repeating: nil, count: (count + perColumn - 1) / perColumn)
            for (sample, slot) in zip(samples, placed) {
                guard let value = Double(sample.value) else { continue }
                let column = (slot - first) / perColumn
                columns[column] = max(columns[column] ?? -Double.infinity, value)
            }
            line = Sparkline.render(columns)
            if perColumn > 1 { note = "  (each column: \(perColumn) \(granularity.rawValue.lowercased())s, peak)" }
        } else {
            // Timestamps we cannot place: one column per point, in order.
            line = Sparkline.render(Array(samples.map { Double($0.value) }.suffix(widthMax)))
        }
        let first = samples.first?.timestamp ?? "", last = samples.last?.timestamp ?? ""
        return """
            \(label)  total \(total)  peak \(peak)\(note)
              \(first) \(line) \(last)
            """
    }

    /// The bucket's index on a uniform axis: minutes, hours or days since the epoch, or months
    /// since year 0; nil when `timestamp` is not `YYYY-MM-DDTHH:MM…` in UTC.
    static func slot(of timestamp: String, _ granularity: UsageHistoryCommand.Granularity) -> Int? {
        let characters = Array(timestamp.utf8)
        guard characters.count >= 16, characters[4] == UInt8(ascii: "-"), characters[10] == UInt8(ascii: "T") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let digit = Int(characters[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), (1...12).contains(month)
        else { return nil }
        if granularity == .month { return year * 12 + month - 1 }
        let days = daysFromCivil(year: year, month: month, day: day)
        switch granularity {
        case .day: return days
        case .hour: return days * 24 + hour
        case .minute: return (days * 24 + hour) * 60 + minute
        case .month: return nil
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

/// Exact order of decimal strings as the daemon writes them: an optional `-`, digits, and an
/// optional `.` and digits (no exponent). Usage totals may be beyond `Amount`'s range, so they
/// are compared as text.
enum DecimalText {
    /// Whether `a` < `b`; false when either is not such a decimal.
    static func isLess(_ a: String, _ b: String) -> Bool {
        guard let x = parts(a), let y = parts(b) else { return false }
        if x.negative != y.negative { return x.negative }
        let magnitude = compareMagnitude(x, y)
        return x.negative ? magnitude > 0 : magnitude < 0
    }

    private typealias Parts = (negative: Bool, integer: Substring, fraction: Substring)

    private static func parts(_ text: String) -> Parts? {
        var rest = Substring(text)
        let negative = rest.hasPrefix("-")
        if negative { rest = rest.dropFirst() }
        let pieces = rest.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = pieces.first, !whole.isEmpty, whole.allSatisfy(\.isASCIIDigit) else { return nil }
        let fraction = pieces.count > 1 ? pieces[1] : ""
        guard fraction.allSatisfy(\.isASCIIDigit) else { return nil }
        let integer = whole.drop { $0 == "0" }
        let significant = fraction.reversed().drop { $0 == "0" }
        let trimmed = fraction.prefix(significant.count)
        // -0 is 0.
        return (negative && !(integer.isEmpty && trimmed.isEmpty), integer, trimmed)
    }

    /// -1, 0 or 1 as |x| is below, equal to or above |y|.
    private static func compareMagnitude(_ x: Parts, _ y: Parts) -> Int {
        if x.integer.count != y.integer.count { return x.integer.count < y.integer.count ? -1 : 1 }
        if x.integer != y.integer { return x.integer < y.integer ? -1 : 1 }
        // Trailing zeros are trimmed, so text order is numeric order here ("5" < "51").
        if x.fraction != y.fraction { return x.fraction < y.fraction ? -1 : 1 }
        return 0
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
