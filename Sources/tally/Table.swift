/// Aligned plain-text tables: widths from content, a header row, numbers right-aligned.
///
/// Widths are terminal columns (`displayWidth`: East Asian wide and emoji glyphs take two, a
/// combining mark none); control characters in cells are escaped (`\n`, `\u{1B}`), so stored data
/// can neither split a row nor send escape sequences to the terminal. Only a column with
/// `widthMax` truncates.
struct TableFormatter {
    enum Alignment { case left, right }

    struct Column {
        var title: String
        /// nil: right-aligned when every non-empty cell is a number, else left.
        var alignment: Alignment?
        /// Cells longer than this are cut with "…".
        var widthMax: Int?
        /// Keeps the column at least this wide, so rows printed in batches stay aligned.
        var widthMin: Int

        init(_ title: String, alignment: Alignment? = nil, widthMax: Int? = nil, widthMin: Int = 0) {
            self.title = title
            self.alignment = alignment
            self.widthMax = widthMax
            self.widthMin = widthMin
        }
    }

    static let separator = "  "

    var columns: [Column]
    private(set) var rows: [[String]] = []

    init(columns: [Column]) {
        self.columns = columns
    }

    init(_ titles: [String]) {
        self.init(columns: titles.map { Column($0) })
    }

    /// Adds a row; missing trailing cells are empty.
    mutating func append(_ cells: [String]) {
        precondition(cells.count <= columns.count, "a row has more cells than the table has columns")
        rows.append(cells.map { Self.printable($0) } + Array(repeating: "", count: columns.count - cells.count))
    }

    /// `text` with control characters (C0, DEL, C1, line and paragraph separators, bidi
    /// overrides and isolates) written as escapes: `\n`, `\t`, `\r`, else `\u{…}`.
    static func printable(_ text: String, keepingNewlines: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0) && !(keepingNewlines && $0 == "\n") }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            guard isControl(scalar), !(keepingNewlines && scalar == "\n") else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        return out
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// The terminal columns `text` takes: 2 for a wide or emoji glyph, 1 for others (a combining
    /// mark belongs to its base's Character, so it adds nothing).
    static func displayWidth(_ text: String) -> Int {
        var width = 0
        for character in text { width += characterWidth(character) }
        return width
    }

    private static func characterWidth(_ character: Character) -> Int {
        for scalar in character.unicodeScalars {
            if scalar.properties.isEmojiPresentation { return 2 }
            switch scalar.value {
            case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
                 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x20000...0x3FFFD:
                return 2
            default: continue
            }
        }
        return 1
    }

    /// The table as lines, without a trailing newline and without trailing spaces.
    func render(header: Bool = true) -> String {
        let cells = self.cells
        let widths = columnWidths(header: header)
        let alignments = columns.indices.map { index in
            columns[index].alignment ?? (Self.allNumeric(cells.map { $0[index] }) ? .right : .left)
        }
        var lines: [String] = []
        if header { lines.append(Self.line(columns.map(\.title), widths, alignments)) }
        for row in cells { lines.append(Self.line(row, widths, alignments)) }
        return lines.joined(separator: "\n")
    }

    /// The width of each column as `render` lays it out: its `widthMin`, its title (with the
    /// header) and its widest cell. Rows printed later under this table's header (`--follow`)
    /// take these as their `widthMin`, so they line up with it.
    func columnWidths(header: Bool = true) -> [Int] {
        var widths = columns.map { max($0.widthMin, header ? Self.displayWidth($0.title) : 0) }
        for row in cells {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], Self.displayWidth(cell)) }
        }
        return widths
    }

    private var cells: [[String]] {
        rows.map { row in
            zip(row, columns).map { cell, column in
                column.widthMax.map { Self.truncate(cell, to: $0) } ?? cell
            }
        }
    }

    /// Two columns, KEY and VALUE, for one object's fields; no header.
    static func keyValue(_ pairs: [(String, String)]) -> String {
        var table = TableFormatter(columns: [Column("KEY"), Column("VALUE", alignment: .left)])
        for (key, value) in pairs { table.append([key, value]) }
        return table.render(header: false)
    }

    /// `text` cut to `width` terminal columns, ending in "…" when cut.
    static func truncate(_ text: String, to width: Int) -> String {
        guard displayWidth(text) > width else { return text }
        var kept = ""
        var used = 0
        let room = width > 1 ? width - 1 : width
        for character in text {
            let next = characterWidth(character)
            guard used + next <= room else { break }
            kept.append(character)
            used += next
        }
        return width > 1 ? kept + "…" : kept
    }

    /// A plain decimal: optional minus, digits, optional fraction. Amounts arrive as such strings.
    static func isNumeric(_ text: String) -> Bool {
        var digits = Substring(text)
        if digits.first == "-" { digits = digits.dropFirst() }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        return !parts[0].isEmpty && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    private static func allNumeric(_ cells: [String]) -> Bool {
        let filled = cells.filter { !$0.isEmpty }
        return !filled.isEmpty && filled.allSatisfy(isNumeric)
    }

    private static func line(_ cells: [String], _ widths: [Int], _ alignments: [Alignment]) -> String {
        var parts: [String] = []
        for (index, cell) in cells.enumerated() {
            let padding = String(repeating: " ", count: max(0, widths[index] - Self.displayWidth(cell)))
            let isLast = index == cells.count - 1
            switch alignments[index] {
            case .right: parts.append(padding + cell)
            case .left: parts.append(isLast ? cell : cell + padding)
            }
        }
        var text = parts.joined(separator: separator)
        while text.last == " " { text.removeLast() }
        return text
    }
}
