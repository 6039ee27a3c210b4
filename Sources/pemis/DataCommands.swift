import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// `pemis data …`: a kindergarten's own information (basic, classes, staff) and its history.
struct DataCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "data",
    abstract: "A kindergarten's basic information, classes and staff (Art. 13-14).",
    subcommands: [Profile.self, ClassGroup.self, StaffGroup.self, Finance.self, Leadership.self, History.self])

  struct Target: ParsableArguments {
    @Option(help: "Institution code (district accounts; a kindergarten account: its own).") var kindergarten: String = ""
  }

  static func client(_ client: GRPCClient<PEMISWireClientTransport>) -> Pemis_V1_KindergartenData.Client<PEMISWireClientTransport> {
    .init(wrapping: client)
  }

  struct Profile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show or set the basic information.", subcommands: [Show.self, Set.self])

    static func show(_ p: Pemis_V1_Profile, json: Bool) throws {
      if json { return try printJSON(message: p) }
      print("\(p.kindergartenCode)  \(p.name)  level \(p.level)")
      print("address \(p.address); licence \(p.licenceNumber); sponsor \(p.sponsor)")
      print("principal \(p.principalName); phone \(p.contactPhone)\(p.contactEmail.isEmpty ? "" : "; \(p.contactEmail)")")
      print("building \(p.buildingArea) m², outdoor \(p.outdoorArea) m², approved for \(p.approvedCapacity) children")
      print("last changed \(formatTime(p.updatedAt)) by \(p.updatedBy)")
    }

    struct Show: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      func run() async throws {
        try await runReportingFailure {
          let p = try await connection.withSession { try await DataCommand.client($0).getProfile(.with { $0.kindergartenCode = target.kindergarten }) }
          try Profile.show(p, json: connection.json)
        }
      }
    }

    struct Set: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Enter or correct the basic information (all fields).")
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Option var name: String
      @Option var address: String
      @Option(help: "unrated, level3, level2, level1 or model.") var level: String = "unrated"
      @Option var licence: String
      @Option var sponsor: String
      @Option var principal: String
      @Option var phone: String
      @Option var email: String = ""
      @Option(help: "Building area, m².") var buildingArea: Int32 = 0
      @Option(help: "Outdoor area, m².") var outdoorArea: Int32 = 0
      @Option(help: "Approved capacity (children).") var capacity: Int32 = 0
      func run() async throws {
        try await runReportingFailure {
          let p = try await connection.withSession { client in
            try await DataCommand.client(client).updateProfile(.with {
              $0.kindergartenCode = target.kindergarten
              $0.profile = .with {
                $0.name = name
                $0.address = address
                $0.level = level
                $0.licenceNumber = licence
                $0.sponsor = sponsor
                $0.principalName = principal
                $0.contactPhone = phone
                $0.contactEmail = email
                $0.buildingArea = buildingArea
                $0.outdoorArea = outdoorArea
                $0.approvedCapacity = capacity
              }
            })
          }
          try Profile.show(p, json: connection.json)
        }
      }
    }
  }

  struct ClassGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "class", abstract: "Classes.", subcommands: [List.self, Create.self, Update.self, Delete.self])

    struct Fields: ParsableArguments {
      @Option var name: String
      @Option(help: "small, middle, large or mixed.") var grade: String
      @Option(help: "School year, like 2026-2027.") var year: String
      @Option(help: "Planned number of children.") var capacity: Int32
      @Option(help: "Head teacher's staff id (S0001).") var headTeacher: String = ""
      func proto(id: String = "") -> Pemis_V1_Class {
        .with {
          $0.classID = id
          $0.name = name
          $0.grade = grade
          $0.schoolYear = year
          $0.capacity = capacity
          $0.headTeacherStaffID = headTeacher
        }
      }
    }

    static func show(_ r: Pemis_V1_ClassResponse, json: Bool) throws {
      if json { return try printJSON(message: r) }
      printTable(["id", "name", "grade", "year", "capacity", "head teacher"], [[r.class.classID, r.class.name, r.class.grade, r.class.schoolYear, String(r.class.capacity), r.class.headTeacherStaffID]])
      for warning in r.warnings { print("warning: \(warning)") }
    }

    struct List: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      func run() async throws {
        try await runReportingFailure {
          let r = try await connection.withSession { try await DataCommand.client($0).listClasses(.with { $0.kindergartenCode = target.kindergarten }) }
          if connection.json { return try printJSON(message: r) }
          printTable(["id", "name", "grade", "year", "capacity", "head teacher"], r.classes.map { [$0.classID, $0.name, $0.grade, $0.schoolYear, String($0.capacity), $0.headTeacherStaffID] })
        }
      }
    }

    struct Create: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @OptionGroup var fields: Fields
      func run() async throws {
        try await runReportingFailure {
          let r = try await connection.withSession { client in
            try await DataCommand.client(client).createClass(.with {
              $0.kindergartenCode = target.kindergarten
              $0.class = fields.proto()
            })
          }
          try ClassGroup.show(r, json: connection.json)
        }
      }
    }

    struct Update: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Argument(help: "Class id (C0001).") var id: String
      @OptionGroup var fields: Fields
      func run() async throws {
        try await runReportingFailure {
          let r = try await connection.withSession { client in
            try await DataCommand.client(client).updateClass(.with {
              $0.kindergartenCode = target.kindergarten
              $0.class = fields.proto(id: id)
            })
          }
          try ClassGroup.show(r, json: connection.json)
        }
      }
    }

    struct Delete: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Argument(help: "Class id (C0001).") var id: String
      func run() async throws {
        try await runReportingFailure {
          _ = try await connection.withSession { client in
            try await DataCommand.client(client).deleteClass(.with {
              $0.kindergartenCode = target.kindergarten
              $0.classID = id
            })
          }
          print("class \(id) deleted")
        }
      }
    }
  }

  struct StaffGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "staff", abstract: "Care-and-education staff.", subcommands: [List.self, Create.self, Update.self])

    struct Fields: ParsableArguments {
      @Option var name: String
      @Option(help: "resident_id, hmt_residence_permit, foreign_permanent_residence, travel_permit, passport or other.") var idType: String = "resident_id"
      @Option(help: "Document number (shown masked afterwards).") var idNumber: String
      @Option(help: "male or female.") var gender: String
      @Option(help: "YYYY-MM-DD.") var born: String
      @Option(help: "teacher, childcare_worker, health_staff, principal or other.") var post: String
      @Option var qualification: String = ""
      @Option var certificate: String = ""
      @Option(help: "YYYY-MM-DD.") var hired: String
      @Option(help: "active or left.") var status: String = "active"
      func proto(id: String = "") throws -> Pemis_V1_StaffMember {
        let birth = try parseDate(born, "--born")
        let hire = try parseDate(hired, "--hired")
        return .with {
          $0.staffID = id
          $0.name = name
          $0.idDocumentType = idType
          $0.idDocumentNumber = idNumber
          $0.gender = gender
          $0.birthDate = birth
          $0.post = post
          $0.qualification = qualification
          $0.certificate = certificate
          $0.hireDate = hire
          $0.status = status
        }
      }
    }

    static func rows(_ staff: [Pemis_V1_StaffMember]) {
      printTable(
        ["id", "name", "post", "gender", "born", "document", "hired", "status"],
        staff.map { [$0.staffID, $0.name, $0.post, $0.gender, formatDate($0.birthDate), "\($0.idDocumentType) \($0.idDocumentNumber)", formatDate($0.hireDate), $0.status] })
    }

    struct List: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      func run() async throws {
        try await runReportingFailure {
          let r = try await connection.withSession { try await DataCommand.client($0).listStaff(.with { $0.kindergartenCode = target.kindergarten }) }
          if connection.json { return try printJSON(message: r) }
          StaffGroup.rows(r.staff)
        }
      }
    }

    struct Create: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @OptionGroup var fields: Fields
      func run() async throws {
        let staff = try fields.proto()
        try await runReportingFailure {
          let r = try await connection.withSession { client in
            try await DataCommand.client(client).createStaff(.with {
              $0.kindergartenCode = target.kindergarten
              $0.staff = staff
            })
          }
          if connection.json { return try printJSON(message: r) }
          StaffGroup.rows([r])
        }
      }
    }

    struct Update: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Argument(help: "Staff id (S0001).") var id: String
      @OptionGroup var fields: Fields
      func run() async throws {
        let staff = try fields.proto(id: id)
        try await runReportingFailure {
          let r = try await connection.withSession { client in
            try await DataCommand.client(client).updateStaff(.with {
              $0.kindergartenCode = target.kindergarten
              $0.staff = staff
            })
          }
          if connection.json { return try printJSON(message: r) }
          StaffGroup.rows([r])
        }
      }
    }
  }

  struct Finance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "A year's finance information (amounts in yuan).", subcommands: [Show.self, Set.self, Confirm.self])

    static func yuan(_ fen: Int64) -> String { String(format: "%.2f", Double(fen) / 100) }

    static func show(_ f: Pemis_V1_FinanceYear, json: Bool) throws {
      if json { return try printJSON(message: f) }
      print("\(f.kindergartenCode) finance \(f.year): " + (f.confirmedBy.isEmpty ? "not confirmed" : "confirmed by \(f.confirmedBy) \(formatTime(f.confirmedAt))"))
      var rows: [[String]] = []
      for (kind, lines) in [("income", f.income), ("expenditure", f.expenditure), ("subsidy", f.subsidies)] {
        for line in lines { rows.append([kind, line.category, yuan(line.fen), line.note]) }
      }
      printTable(["kind", "category", "yuan", "note"], rows)
    }

    /// "tuition=1800000.50" → an amount in fen.
    static func amounts(_ items: [String], _ flag: String) throws -> [Pemis_V1_Amount] {
      try items.map { item in
        let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let value = Decimal(string: parts[1]), value >= 0 else {
          throw ValidationError("\(flag) takes CATEGORY=YUAN, like tuition=1800000.50; got '\(item)'")
        }
        let fen = NSDecimalNumber(decimal: value * 100).int64Value
        return .with {
          $0.category = parts[0]
          $0.fen = fen
        }
      }
    }

    struct Show: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Option var year: Int32
      func run() async throws {
        try await runReportingFailure {
          let f = try await connection.withSession { client in
            try await DataCommand.client(client).getFinance(.with {
              $0.kindergartenCode = target.kindergarten
              $0.year = year
            })
          }
          try Finance.show(f, json: connection.json)
        }
      }
    }

    struct Set: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Enter or correct a year (a correction withdraws its confirmation).")
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Option var year: Int32
      @Option(help: "SOURCE=YUAN; sources: tuition, government_funding, sponsor, donation, other (repeatable).") var income: [String] = []
      @Option(help: "CATEGORY=YUAN; salaries, operations, equipment, maintenance, food, other (repeatable).") var expenditure: [String] = []
      @Option(help: "PROGRAMME=YUAN, subsidies received (repeatable).") var subsidy: [String] = []
      func run() async throws {
        let income = try Finance.amounts(income, "--income")
        let expenditure = try Finance.amounts(expenditure, "--expenditure")
        let subsidies = try Finance.amounts(subsidy, "--subsidy")
        try await runReportingFailure {
          let f = try await connection.withSession { client in
            try await DataCommand.client(client).putFinance(.with {
              $0.kindergartenCode = target.kindergarten
              $0.finance = .with {
                $0.year = year
                $0.income = income
                $0.expenditure = expenditure
                $0.subsidies = subsidies
              }
            })
          }
          try Finance.show(f, json: connection.json)
        }
      }
    }

    struct Confirm: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Confirm a year (Planning & Finance Office).")
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Option var year: Int32
      func run() async throws {
        try await runReportingFailure {
          let f = try await connection.withSession { client in
            try await DataCommand.client(client).confirmFinance(.with {
              $0.kindergartenCode = target.kindergarten
              $0.year = year
            })
          }
          try Finance.show(f, json: connection.json)
        }
      }
    }
  }

  struct Leadership: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The leadership group (Art. 19); a change is reported within 3 working days.", subcommands: [Show.self, Set.self])

    static func show(_ g: Pemis_V1_LeadershipGroup, json: Bool) throws {
      if json { return try printJSON(message: g) }
      print("leadership group of \(g.kindergartenCode), in effect since \(formatDate(g.changedOn))" + (g.reportStatus.isEmpty ? "" : "; reported: \(g.reportStatus)"))
      printTable(["name", "role", "staff"], g.members.map { [$0.name, $0.role, $0.staffID] })
    }

    struct Show: AsyncParsableCommand {
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      func run() async throws {
        try await runReportingFailure {
          let g = try await connection.withSession { try await DataCommand.client($0).getLeadershipGroup(.with { $0.kindergartenCode = target.kindergarten }) }
          try Leadership.show(g, json: connection.json)
        }
      }
    }

    struct Set: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Register the group or its change.")
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: Target
      @Option(help: "NAME:ROLE[:STAFF_ID]; roles: leader, administrator, class_leader, finance, hr (repeatable).") var member: [String]
      @Option(help: "When the change took effect, YYYY-MM-DD.") var changed: String
      func run() async throws {
        let date = try parseDate(changed, "--changed")
        let members = try member.map { text -> Pemis_V1_LeadershipMember in
          let parts = text.split(separator: ":").map(String.init)
          guard (2...3).contains(parts.count) else { throw ValidationError("--member takes NAME:ROLE[:STAFF_ID], got '\(text)'") }
          return .with {
            $0.name = parts[0]
            $0.role = parts[1]
            $0.staffID = parts.count == 3 ? parts[2] : ""
          }
        }
        try await runReportingFailure {
          let g = try await connection.withSession { client in
            try await DataCommand.client(client).setLeadershipGroup(.with {
              $0.kindergartenCode = target.kindergarten
              $0.members = members
              $0.changedOn = date
            })
          }
          try Leadership.show(g, json: connection.json)
        }
      }
    }
  }

  struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every change of a record: old, new, who, when.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: Target
    @Argument(help: "profile, class:C0001, staff:S0001, finance:2026 or leadership.") var record: String
    func run() async throws {
      try await runReportingFailure {
        let r = try await connection.withSession { client in
          try await DataCommand.client(client).getHistory(.with {
            $0.kindergartenCode = target.kindergarten
            $0.record = record
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: r) }
        printTable(["when", "by", "field", "old", "new"], r.entries.map { [formatTime($0.changedAt), $0.changedBy, $0.field, $0.oldValue, $0.newValue] })
      }
    }
  }
}
