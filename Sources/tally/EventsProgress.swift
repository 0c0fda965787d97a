import TallyEngine

/// The progress of `tally events send` on standard error: the shared `ProgressBar` over the bytes
/// of input, with the send's own counts as its detail:
/// `sending [#######-----------------]  31%  120000 events  52000/s  accepted 119990  duplicates 10  rejected 0`.
final class EventsProgress {
    private let bar: ProgressBar
    /// Bytes of input in all, 0 when unknown (stdin, a pipe).
    let totalBytes: Int

    init(totalBytes: Int, isTerminal: Bool? = nil) {
        self.totalBytes = totalBytes
        bar = ProgressBar(label: "sending", unit: "bytes", isTerminal: isTerminal)
    }

    var isTerminal: Bool { bar.isTerminal }

    /// Seconds since the progress began.
    var elapsedSeconds: Double { bar.elapsedSeconds }

    /// Redraws when enough time has passed since the last drawing.
    /// What the last line drawn showed (bytes read, counts).
    private var drawn: (bytes: Int, counts: EventsSendCommand.Counts)?

    func update(bytesRead: Int, _ counts: EventsSendCommand.Counts) {
        if bar.update(UInt64(max(0, bytesRead)), of: UInt64(max(0, totalBytes)), detail: detail(counts)) { drawn = (bytesRead, counts) }
    }

    /// Ends the progress: on a terminal the in-place line is cleared, so the summary starts on a
    /// clean line; elsewhere (a log) a last plain line gives the final counts, so the last line
    /// there is not the stale one of up to 5 seconds before.
    func finish(bytesRead: Int, _ counts: EventsSendCommand.Counts) {
        if isTerminal {
            bar.clear()
        } else if drawn.map({ $0.bytes != bytesRead || $0.counts != counts }) ?? true {  // not the same line twice
            bar.finish(UInt64(max(0, bytesRead)), of: UInt64(max(0, totalBytes)), detail: detail(counts))
        }
    }

    private func detail(_ counts: EventsSendCommand.Counts) -> String {
        let answered = counts.accepted + counts.duplicates + counts.rejected + counts.failed
        var detail = "\(answered) events  \(Int(Double(answered) / max(elapsedSeconds, 0.001)))/s"
        detail += "  accepted \(counts.accepted)  duplicates \(counts.duplicates)  rejected \(counts.rejected)"
        if counts.invalid > 0 { detail += "  invalid \(counts.invalid)" }
        if counts.failed > 0 { detail += "  failed \(counts.failed)" }
        return detail
    }
}
