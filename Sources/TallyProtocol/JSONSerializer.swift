import TallyCore

extension JSONValue {
    /// Appends compact JSON (no whitespace) to `buffer`. Object keys in insertion order; strings
    /// escaped per RFC 8259 (`"`, `\`, and control characters below 0x20 as `\n \r \t \b \f` or
    /// `\u00xx`; non-ASCII written as raw UTF-8; "/" not escaped). Numbers are written as their
    /// stored text, unchanged.
    public func serialize(into buffer: inout [UInt8]) {
        JSONByteWriter.write(self, into: &buffer, sorted: false)
    }

    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(128)
        JSONByteWriter.write(self, into: &buffer, sorted: false)
        return buffer
    }

    public var jsonText: String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// Canonical bytes for fingerprints: like `serialized()` but object keys sorted by their
    /// UTF-8 bytes, recursively.
    public func canonicalSerialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(128)
        JSONByteWriter.write(self, into: &buffer, sorted: true)
        return buffer
    }
}

enum JSONByteWriter {
    static func write(_ value: JSONValue, into buffer: inout [UInt8], sorted: Bool) {
        switch value {
        case .null:
            buffer.append(contentsOf: "null".utf8)
        case .bool(let b):
            if b {
                buffer.append(contentsOf: "true".utf8)
            } else {
                buffer.append(contentsOf: "false".utf8)
            }
        case .number(let text):
            buffer.append(contentsOf: text.utf8)
        case .string(let s):
            writeString(s, into: &buffer)
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            var first = true
            for e in elements {
                if !first { buffer.append(UInt8(ascii: ",")) }
                first = false
                write(e, into: &buffer, sorted: sorted)
            }
            buffer.append(UInt8(ascii: "]"))
        case .object(let object):
            buffer.append(UInt8(ascii: "{"))
            var first = true
            if sorted && object.entries.count > 1 {
                let ordered = object.entries.sorted { UTF8Exact.less($0.key, $1.key) }
                for (k, v) in ordered {
                    if !first { buffer.append(UInt8(ascii: ",")) }
                    first = false
                    writeString(k, into: &buffer)
                    buffer.append(UInt8(ascii: ":"))
                    write(v, into: &buffer, sorted: sorted)
                }
            } else {
                for (k, v) in object.entries {
                    if !first { buffer.append(UInt8(ascii: ",")) }
                    first = false
                    writeString(k, into: &buffer)
                    buffer.append(UInt8(ascii: ":"))
                    write(v, into: &buffer, sorted: sorted)
                }
            }
            buffer.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ s: String, into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { p in
            writeEscaped(p, into: &buffer)
        }
        if done == nil {
            let copy = Array(s.utf8)
            copy.withUnsafeBufferPointer { writeEscaped($0, into: &buffer) }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    static func writeEscaped(_ p: UnsafeBufferPointer<UInt8>, into buffer: inout [UInt8]) {
        var runStart = 0
        var j = 0
        let n = p.count
        while j < n {
            let c = p[j]
            if c >= 0x20 && c != 0x22 && c != 0x5C {
                j += 1
                continue
            }
            if runStart < j {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: p[runStart..<j]))
            }
            buffer.append(UInt8(ascii: "\\"))
            switch c {
            case 0x22: buffer.append(UInt8(ascii: "\""))
            case 0x5C: buffer.append(UInt8(ascii: "\\"))
            case 0x0A: buffer.append(UInt8(ascii: "n"))
            case 0x0D: buffer.append(UInt8(ascii: "r"))
            case 0x09: buffer.append(UInt8(ascii: "t"))
            case 0x08: buffer.append(UInt8(ascii: "b"))
            case 0x0C: buffer.append(UInt8(ascii: "f"))
            default:
                buffer.append(UInt8(ascii: "u"))
                buffer.append(UInt8(ascii: "0"))
                buffer.append(UInt8(ascii: "0"))
                buffer.append(hexDigit(c >> 4))
                buffer.append(hexDigit(c & 0x0F))
            }
            j += 1
            runStart = j
        }
        if runStart < n {
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: p[runStart..<n]))
        }
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 {
        v < 10 ? 0x30 + v : 0x61 + v - 10
    }
}
