import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// `pemis export …`: children's data leaves only with written approval (Art. 20).
struct ExportCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Exports of children's data with the next higher authority's approval (Art. 20).",
    discussion: """
      A kindergarten's principal or administrator asks for its own children; the Preschool (or \
      Vocational) Office approves. A district office asks for the district's; the district's \
      export approver approves. The file is de-identified (masked ID numbers, ages instead of \
      birth dates, no contacts or health) except the fields approved in full, and the requester \
      may download it for a week.
      """,
    subcommands: [Request.self, Decide.self, List.self, Download.self])

  static func client(_ client: GRPCClient<PEMISWireClientTransport>) -> Pemis_V1_Exports.Client<PEMISWireClientTransport> {
    .init(wrapping: client)
  }

  static func rows(_ exports: [Pemis_V1_Export]) {
    printTable(
      ["export", "kindergarten", "state", "fields", "in full", "requested by", "decided by", "rows", "purpose → recipient"],
      exports.map {
        [
          $0.id, $0.kindergartenCode.isEmpty ? "(district)" : $0.kindergartenCode, $0.state, $0.fields.joined(separator: ","),
          ($0.state == "requested" ? $0.fullFieldsRequested : $0.fullFieldsApproved).joined(separator: ","),
          "\($0.requestedBy) \(formatTime($0.requestedAt))", $0.decidedBy.isEmpty ? "" : "\($0.decidedBy) \(formatTime($0.decidedAt))",
          $0.rows > 0 ? String($0.rows) : "", "\($0.purpose) → \($0.recipient)",
        ]
      })
  }

  struct Request: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask for an export: purpose, recipient, fields.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Institution code (district offices; empty for the district).") var kindergarten: String = ""
    @Option(help: "Why the data is needed (the approver reads this).") var purpose: String
    @Option(help: "Who receives it.") var recipient: String
    @Option(help: "Comma-separated: name, gender, birth_date, id_document, nationality, ethnicity, household_register, health, guardians, entry_date, class, state.")
    var fields: String
    @Option(help: "Of those, the ones asked for in full (comma-separated).") var full: String = ""
    func run() async throws {
      try await runReportingFailure {
        let e = try await connection.withSession { client in
          try await ExportCommand.client(client).requestExport(.with {
            $0.kindergartenCode = kindergarten
            $0.purpose = purpose
            $0.recipient = recipient
            $0.fields = fields.split(separator: ",").map(String.init)
            $0.fullFields = full.split(separator: ",").map(String.init)
          })
        }
        if connection.json { return try printJSON(message: e) }
        ExportCommand.rows([e])
        print("export \(e.id) waits for approval")
      }
    }
  }

  struct Decide: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve (field by field) or reject an export.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Export id (E…).") var id: String
    @Flag(help: "Approve it.") var approve = false
    @Flag(help: "Reject it (--note says why).") var reject = false
    @Option(help: "Fields approved in full (comma-separated; the rest stay de-identified).") var full: String = ""
    @Option(help: "A note; required to reject.") var note: String = ""
    func validate() throws {
      guard approve != reject else { throw ValidationError("give --approve or --reject") }
    }
    func run() async throws {
      try await runReportingFailure {
        let e = try await connection.withSession { client in
          try await ExportCommand.client(client).decideExport(.with {
            $0.id = id
            $0.approve = approve
            $0.fullFields = full.split(separator: ",").map(String.init)
            $0.note = note
          })
        }
        if connection.json { return try printJSON(message: e) }
        ExportCommand.rows([e])
        if e.state == "approved" { print("produced \(e.rows) rows, sha256 \(e.sha256); the requester may download it until \(formatTime(e.expiresAt))") }
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export requests (your kindergarten's, or those you may decide).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Institution code (district offices).") var kindergarten: String = ""
    @Option(help: "requested, approved, rejected or expired.") var state: String = ""
    func run() async throws {
      try await runReportingFailure {
        let r = try await connection.withSession { client in
          try await ExportCommand.client(client).listExports(.with {
            $0.kindergartenCode = kindergarten
            $0.state = state
            $0.page.pageSize = 100
          })
        }
        if connection.json { return try printJSON(message: r) }
        ExportCommand.rows(r.exports)
        print("showing \(r.exports.count) of \(r.page.totalCount) exports")
      }
    }
  }

  struct Download: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download an approved export (its requester, within a week).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Export id (E…).") var id: String
    @Option(help: "Write it here (default: E….csv in the current folder).") var output: String?
    func run() async throws {
      try await runReportingFailure {
        let f = try await connection.withSession { client in
          try await ExportCommand.client(client).downloadExport(.with { $0.id = id })
        }
        let path = output ?? f.fileName
        // Owner-only: it is children's data.
        guard FileManager.default.createFile(atPath: path, contents: f.content, attributes: [.posixPermissions: 0o600]) else {
          throw ValidationError("cannot write \(path)")
        }
        print("wrote \(path): \(f.export.rows) rows, sha256 \(f.export.sha256), approved by \(f.export.decidedBy)")
      }
    }
  }
}
