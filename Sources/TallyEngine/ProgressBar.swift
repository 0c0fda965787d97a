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
    public let isTerminal: Bool
    private let started = Date()
    private var lastDrawn = Date.distantPast
    private var drewInPlace = false

    /// `isTerminal` nil: whether standard error is a terminal.
    public init(label: String, unit: String, isTerminal: Bool? = nil) {
        self.label = label
        self.unit = unit
        self.isTerminal = isTerminal ?? (isatty(2) == 1)
    }

    /// Seconds since the bar was made.
    public var elapsedSeconds: Double { Date().timeIntervalSince(started) }

    /// Reports `done` of `total` units (`total` 0 when unknown). `detail` replaces the default
    /// text after the percentage (counts, rate, ETA) for callers that report their own figures.
    /// Returns whether it drew.
    @discardableResult
    public func update(_ done: UInt64, of total: UInt64, detail: String? = nil) -> Bool {
        let now = Date()
        guard now.timeIntervalSince(lastDrawn) >= (isTerminal ? 0.1 : 5) else { return false }
        lastDrawn = now
        draw(done, total, detail: detail, now: now)
        return true
    }

    /// Ends the bar with a final line.
    public func finish(_ done: UInt64, of total: UInt64, detail: String? = nil) {
        draw(done, total, detail: detail, now: Date())
        if isTerminal { emit("\n") }
    }

    /// Removes the in-place line on a terminal (so a summary can start on a clean line).
    public func clear() {
        if isTerminal, drewInPlace { emit("\r\u{1B}[K") }
    }

    private func draw(_ done: UInt64, _ total: UInt64, detail: String?, now: Date) {
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
            if detail == nil { text += "  \(Self.short(done))/\(Self.short(total)) \(unit)" }
        } else if detail == nil {
            text += "  \(Self.short(done)) \(unit)"
        }
        if let detail {
            text += "  " + detail
        } else {
            text += "  \(Self.short(UInt64(rate)))/s"
            // Bounded: a total from a damaged manifest can be absurd, and Int(_:) traps beyond Int.max.
            if total > done, rate > 0, case let seconds = (Double(total - done) / rate).rounded(.up), seconds < 1e9 {
                text += "  ETA \(Int(seconds))s"
            }
        }
        if isTerminal {
            // Cut to the terminal's width: a longer line wraps, and each redraw would leave the
            // wrapped part behind. (The text is ASCII: one column per character.)
            let columns = Self.terminalColumns()
            if text.count >= columns { text = String(text.prefix(max(columns - 1, 1))) }
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

    /// The width of the terminal on standard error, 80 when it cannot be read.
    static func terminalColumns() -> Int {
        var size = winsize()
        let status = withUnsafeMutablePointer(to: &size) { ioctl(2, UInt(TIOCGWINSZ), $0) }
        return status == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
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

/// The two bars of checking a snapshot: its files (bytes), then the replay of a copy (events).
/// `files` and `replay` are the progress handlers to pass on; `finish` closes whichever bar is
/// open. Not `Sendable`: the handlers are called on the caller's thread.
public final class SnapshotCheckProgress {
    private let files: ProgressBar
    private let events = ProgressBar(label: "replay", unit: "events")
    private var bytes: (done: UInt64, total: UInt64) = (0, 0)
    private var replayStarted = false

    public init(filesLabel: String) {
        files = ProgressBar(label: filesLabel, unit: "bytes")
    }

    public func file(_ done: UInt64, of total: UInt64) {
        bytes = (done, total)
        files.update(done, of: total)
    }

    public func replay(_ done: UInt64, of total: UInt64) {
        if !replayStarted {
            replayStarted = true
            // The files' bar ends at the bytes it counted, not at the replay's event count.
            files.finish(bytes.total, of: bytes.total)
        }
        events.update(done, of: total)
    }

    public func finish(bytesChecked: UInt64, bytesTotal: UInt64, eventsRead: UInt64, eventsTotal: UInt64) {
        if replayStarted {
            events.finish(eventsRead, of: eventsTotal)
        } else {
            files.finish(bytesChecked, of: bytesTotal)
        }
    }
}
