/// The process's own command line, as the kernel gave it.
public enum ProcessArguments {
    /// The first argument (index, and its bytes shown with invalid ones as `\xNN`) that is not
    /// valid UTF-8, or nil. Swift decodes arguments with U+FFFD in place of such bytes, so a path
    /// like `data\xff` would quietly name another directory; the commands refuse it instead.
    public static func firstNotUTF8() -> (index: Int, shown: String)? {
        for index in 0..<Int(CommandLine.argc) {
            guard let pointer = CommandLine.unsafeArgv[index], String(validatingCString: pointer) == nil else { continue }
            var shown = ""
            var bytes: [UInt8] = []
            var p = pointer
            while p.pointee != 0 {
                bytes.append(UInt8(bitPattern: p.pointee))
                p += 1
            }
            for byte in bytes { shown += byte < 0x80 ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16, uppercase: true) }
            return (index, shown)
        }
        return nil
    }

    /// The message for `firstNotUTF8`'s finding.
    public static func notUTF8Message(_ finding: (index: Int, shown: String)) -> String {
        "error: argument \(finding.index) (\(finding.shown)) is not valid UTF-8; paths and values must be UTF-8"
    }
}
