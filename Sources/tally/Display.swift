import Foundation
import TallyProtocol

/// How JSON values look in tables and in `tally call`'s output.
enum Display {
    /// A rejection of one item of a call without the item's place in the call
    /// (`events[3].timestamp …` → `timestamp …`), for output that names the item by its line or
    /// record in the file instead.
    static func withoutCallIndex(_ message: String, array: String, index: Int, item: String) -> String {
        message
            .replacingOccurrences(of: "\(array)[\(index)].", with: "")
            .replacingOccurrences(of: "\(array)[\(index)]: ", with: "")
            .replacingOccurrences(of: "\(array)[\(index)] ", with: "\(item) ")
    }

    /// `token` as a POSIX shell reads it back as one word: as it is when plain, else in single
    /// quotes (for the command lines tally suggests).
    static func shellQuoted(_ token: String) -> String {
        let plain = !token.isEmpty && token.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil || "-_.=:/,@+".unicodeScalars.contains($0) }
        return plain ? token : "'" + token.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// A cell: strings bare, numbers and booleans as written, null and absent empty, arrays and
    /// objects as compact JSON.
    static func cell(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        switch value {
        case .null: return ""
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let text): return text
        case .string(let text): return text
        case .array, .object: return value.jsonText
        }
    }

    /// Key/value rows for an object: the `leading` keys first (when present), then the rest in
    /// the daemon's order. Nested objects flatten to `parent.child`; arrays stay compact JSON.
    static func fields(_ object: JSONObject, leading: [String] = [], excluding: Set<String> = []) -> [(String, String)] {
        var rows: [(String, String)] = []
        func add(_ key: String, _ value: JSONValue) {
            if case .object(let nested) = value, !nested.isEmpty {
                for (childKey, childValue) in nested { add("\(key).\(childKey)", childValue) }
            } else {
                rows.append((key, cell(value)))
            }
        }
        for key in leading where !excluding.contains(key) {
            if let value = object[key] { add(key, value) }
        }
        for (key, value) in object where !leading.contains(key) && !excluding.contains(key) {
            add(key, value)
        }
        return rows
    }

    /// JSON with 2-space indentation; empty arrays and objects stay on one line.
    static func pretty(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: 0, into: &out)
        return out
    }

    private static func write(_ value: JSONValue, indent: Int, into out: inout String) {
        let inner = String(repeating: "  ", count: indent + 1)
        let closing = String(repeating: "  ", count: indent)
        switch value {
        case .array(let elements) where !elements.isEmpty:
            out += "[\n"
            for (index, element) in elements.enumerated() {
                out += inner
                write(element, indent: indent + 1, into: &out)
                out += index == elements.count - 1 ? "\n" : ",\n"
            }
            out += closing + "]"
        case .object(let object) where !object.isEmpty:
            out += "{\n"
            var remaining = object.count
            for (key, member) in object {
                out += inner + JSONValue.string(key).jsonText + ": "
                write(member, indent: indent + 1, into: &out)
                remaining -= 1
                out += remaining == 0 ? "\n" : ",\n"
            }
            out += closing + "}"
        default:
            out += value.jsonText
        }
    }
}
