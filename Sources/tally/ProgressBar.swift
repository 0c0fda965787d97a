#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The progress of `tally events send` on standard error.
///
/// On a terminal one line is redrawn in place at most 10 times a second:
/// `sending [#######-----------------]  31%  120000 events  52000/s  accepted 119990  duplicates 10  rejected 0`.
/// Otherwise (a pipe, a log) a plain line at most every 5 seconds, so logs stay readable.
final class EventsProgress {
    static let barWidth = 24

    let isTerminal: Bool
    /// Bytes of input in all, 0 when unknown (stdin, a pipe).
    let totalBytes: Int
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private var lastDrawn: ContinuousClock.Instant?
    private var drewInPlace = false

    init(totalBytes: Int, isTerminal: Bool = isatty(2) == 1) {
        self.totalBytes = totalBytes
        self.isTerminal = isTerminal
        started = clock.now
    }

    /// Seconds since the progress began.
    var elapsedSeconds: Double { Self.seconds(clock.now - started) }

    /// Redraws when enough time has passed since the last drawing.
    func update(bytesRead: Int, _ counts: EventsSendCommand.Counts) {
        let now = clock.now
        if let lastDrawn, now - lastDrawn < (isTerminal ? .milliseconds(100) : .seconds(5)) { return }
        lastDrawn = now
        draw(bytesRead: bytesRead, counts)
    }

    /// Clears the in-place line on a terminal, so the summary starts on a clean line.
    func finish() {
        if isTerminal, drewInPlace { emit("\r\u{1B}[K") }
    }

    private func draw(bytesRead: Int, _ counts: EventsSendCommand.Counts) {
        let answered = counts.accepted + counts.duplicates + counts.rejected + counts.failed
        let elapsed = max(elapsedSeconds, 0.001)
        let rate = Int(Double(answered) / elapsed)
        var text = "sending"
        if totalBytes > 0 {
            let fraction = min(1, Double(bytesRead) / Double(totalBytes))
            if isTerminal {
                let filled = Int(fraction * Double(Self.barWidth))
                text += " [" + String(repeating: "#", count: filled) + String(repeating: "-", count: Self.barWidth - filled) + "]"
            }
            let percent = String(Int(fraction * 100))
            text += " " + String(repeating: " ", count: max(0, 3 - percent.count)) + percent + "%"
        }
        text += "  \(answered) events  \(rate)/s  accepted \(counts.accepted)  duplicates \(counts.duplicates)  rejected \(counts.rejected)"
        if counts.invalid > 0 { text += "  invalid \(counts.invalid)" }
        if counts.failed > 0 { text += "  failed \(counts.failed)" }
        if isTerminal {
            emit("\r\u{1B}[K" + text)
            drewInPlace = true
        } else {
            emit(text + "\n")
        }
    }

    private func emit(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
