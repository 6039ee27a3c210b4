import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

extension ChildCommand {
  /// `pemis child import FILE.csv`: the child template, all or nothing (docs/CHILDREN.md).
  struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Import the child template from CSV (UTF-8 or GB18030): all rows or none.",
      discussion: """
        The header names the template's columns, in English (name,gender,birth_date,…) or as the national \
        template has them (姓名,性别,出生日期,…); docs/CHILDREN.md lists them. When any row fails, nothing is \
        imported and every failing row and field is printed. Importing the same rows again changes nothing.
        """)
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "The CSV file.") var file: String
    @Option(help: "utf-8 or gb18030 (default: detect).") var encoding: String = ""
    @Flag(help: "Validate only; import nothing.") var dryRun = false

    /// Bytes per request message.
    static let chunkSize = 256 * 1024

    func run() async throws {
      let bytes: Data
      do {
        bytes = try Data(contentsOf: URL(fileURLWithPath: file))
      } catch {
        throw ValidationError("cannot read \(file): \(error.localizedDescription)")
      }
      let progress = ImportProgressLine(quiet: connection.json)
      let (kindergarten, encoding, dryRun) = (target.kindergarten, encoding, dryRun)
      try await runReportingFailure {
        let outcome = try await connection.withSession { client in
          try await ChildCommand.client(client).importChildren(
            requestProducer: { writer in
              var offset = 0
              repeat {
                let end = min(offset + Self.chunkSize, bytes.count)
                let chunk = bytes.subdata(in: offset..<end)
                try await writer.write(.with {
                  if offset == 0 {
                    $0.kindergartenCode = kindergarten
                    $0.encoding = encoding
                    $0.dryRun = dryRun
                  }
                  $0.chunk = chunk
                })
                offset = end
                progress.show("sent", offset, bytes.count, unit: "bytes")
              } while offset < bytes.count
            },
            onResponse: { response in
              var failures: [Pemis_V1_ImportFailure] = []
              var result: Pemis_V1_ImportResult?
              do {
                for try await event in response.messages {
                  switch event.event {
                  case .progress(let p): progress.show(p.phase, Int(p.done), Int(p.total), unit: p.phase == "received" ? "bytes" : "rows")
                  case .failure(let f):
                    progress.end()
                    failures.append(f)
                    if !connection.json { print("row \(f.row) \(f.field): \(f.message)") }
                  case .result(let r): result = r
                  case nil: break
                  }
                }
              } catch {
                progress.end()
                fflush(nil)
                if connection.json, !failures.isEmpty {
                  // The failures as one document, in the shape of the stream's failure events.
                  try printJSON(["failures": try failures.map { try JSONSerialization.jsonObject(with: Data($0.jsonString().utf8)) }])
                }
                throw error
              }
              progress.end()
              return result ?? Pemis_V1_ImportResult()
            })
        }
        if connection.json { return try printJSON(message: outcome) }
        let verb = outcome.dryRun ? "would import" : "imported"
        print("\(verb) \(outcome.rows) rows: \(outcome.dryRun ? "all valid" : "\(outcome.created) children enrolled"), \(outcome.unchanged) already enrolled and unchanged")
      }
    }
  }
}

/// Progress on standard error: one line rewritten in place on a terminal; otherwise a line per
/// phase and every quarter of the way.
final class ImportProgressLine: Sendable {
  let quiet: Bool
  let terminal = isatty(STDERR_FILENO) != 0
  private let state = NSLock()
  nonisolated(unsafe) private var last: (phase: String, quarter: Int) = ("", -1)
  nonisolated(unsafe) private var open = false

  init(quiet: Bool) { self.quiet = quiet }

  func show(_ phase: String, _ done: Int, _ total: Int, unit: String) {
    guard !quiet else { return }
    state.lock()
    defer { state.unlock() }
    let amount = unit == "bytes" ? String(format: "%.1f MiB", Double(done) / 1_048_576) : "\(done) rows"
    let percent = total > 0 ? " (\(done * 100 / total)%)" : ""
    let text = "\(phase) \(amount)\(percent)"
    if terminal {
      FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
      open = true
    } else {
      let quarter = total > 0 ? done * 4 / total : 0
      guard phase != last.phase || quarter != last.quarter else { return }
      last = (phase, quarter)
      FileHandle.standardError.write(Data("\(text)\n".utf8))
    }
  }

  func end() {
    state.lock()
    defer { state.unlock() }
    if open { FileHandle.standardError.write(Data("\n".utf8)) }
    open = false
  }
}
