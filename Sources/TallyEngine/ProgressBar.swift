import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long offline operation (replay, snapshot verify, restore) on standard error.
///
/// On a terminal: one line redrawn in place, `label [#####-----]  45%  1.2M/2.7M events  52.0k/s  ETA 3s`,
/// at most 10 times a second. Otherwise (a pipe, a log file): a plain line at most every 5 seconds,
/// so logs stay readable. Used by the command-line tools, never by the daemon.
public final class ProgressBar {
    let label: String
    let unit: String
    let isTerminal: Bool
    private let started = Date()
    private var lastDrawn = Date.distantPast
    private var drewInPlace = false

    /// `isTerminal` nil: whether standard error is a terminal.
    public init(label: String, unit: String, isTerminal: Bool? = nil) {
        self.label = label
        self.unit = unit
        self.isTerminal = isTerminal ?? (isatty(2) == 1)
    }

    /// Reports `done` of `total` units (`total` 0 when unknown).
    public func update(_ done: UInt64, of total: UInt64) {
        let now = Date()
        guard now.timeIntervalSince(lastDrawn) >= (isTerminal ? 0.1 : 5) else { return }
        lastDrawn = now
        draw(done, total, now: now)
    }

    /// Ends the bar with a final line.
    public func finish(_ done: UInt64, of total: UInt64) {
        draw(done, total, now: Date())
        if isTerminal { emit("\n") }
    }

    private func draw(_ done: UInt64, _ total: UInt64, now: Date) {
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(done) / elapsed
        var text = label
        if total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            if isTerminal {
                let width = 24
                let filled = Int(fraction * Double(width))
                text += " [" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
            }
            text += " " + String(format: "%3.0f%%", fraction * 100)
            text += "  \(Self.short(done))/\(Self.short(total)) \(unit)"
        } else {
            text += "  \(Self.short(done)) \(unit)"
        }
        text += "  \(Self.short(UInt64(rate)))/s"
        if total > done, rate > 0 {
            text += "  ETA \(Int((Double(total - done) / rate).rounded(.up)))s"
        }
        if isTerminal {
            emit("\r\u{1B}[K" + text)
        } else {
            emit(text + "\n")
        }
    }

    private func emit(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func short(_ value: UInt64) -> String {
        switch value {
        case ..<10_000: "\(value)"
        case ..<10_000_000: String(format: "%.1fk", Double(value) / 1e3)
        case ..<10_000_000_000: String(format: "%.1fM", Double(value) / 1e6)
        default: String(format: "%.1fG", Double(value) / 1e9)
        }
    }
}
