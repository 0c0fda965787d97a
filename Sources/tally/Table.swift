/// Aligned plain-text tables: widths from content, a header row, numbers right-aligned.
///
/// Widths count Characters, which is right for the ASCII that ids, timestamps and JSON mostly
/// are; wide glyphs may misalign a row, never lose data (only a column with `widthMax` truncates).
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
        rows.append(cells + Array(repeating: "", count: columns.count - cells.count))
    }

    /// The table as lines, without a trailing newline and without trailing spaces.
    func render(header: Bool = true) -> String {
        let cells = rows.map { row in
            zip(row, columns).map { cell, column in
                column.widthMax.map { Self.truncate(cell, to: $0) } ?? cell
            }
        }
        var widths = columns.map { max($0.widthMin, header ? $0.title.count : 0) }
        for row in cells {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        let alignments = columns.indices.map { index in
            columns[index].alignment ?? (Self.allNumeric(cells.map { $0[index] }) ? .right : .left)
        }
        var lines: [String] = []
        if header { lines.append(Self.line(columns.map(\.title), widths, alignments)) }
        for row in cells { lines.append(Self.line(row, widths, alignments)) }
        return lines.joined(separator: "\n")
    }

    /// Two columns, KEY and VALUE, for one object's fields; no header.
    static func keyValue(_ pairs: [(String, String)]) -> String {
        var table = TableFormatter(columns: [Column("KEY"), Column("VALUE", alignment: .left)])
        for (key, value) in pairs { table.append([key, value]) }
        return table.render(header: false)
    }

    /// `text` cut to `width` Characters, the last one replaced by "…" when cut.
    static func truncate(_ text: String, to width: Int) -> String {
        guard text.count > width else { return text }
        guard width > 1 else { return String(text.prefix(width)) }
        return String(text.prefix(width - 1)) + "…"
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
            let padding = String(repeating: " ", count: widths[index] - cell.count)
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
