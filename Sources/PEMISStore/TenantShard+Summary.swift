internal import Foundation
internal import GRDB
public import PEMISDomain

/// What the district sees of one kindergarten (docs/ROUTING.md): counts only, no personal data.
public struct KindergartenSummary: Codable, Sendable, Equatable {
  public struct ClassSize: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var grade: String
    public var capacity: Int
    public var children: Int
    /// The national practice's typical size for the grade (a warning, not a limit).
    public var typicalLow: Int
    public var typicalHigh: Int
    public var withinNorm: Bool { (typicalLow...typicalHigh).contains(children) }
  }

  /// Active children: enrolled or pending transfer-out.
  public var children = 0
  public var byGender: [String: Int] = [:]
  public var byDocumentType: [String: Int] = [:]
  /// Age in whole years on the given 1 September.
  public var byAge: [Int: Int] = [:]
  /// By the grade of the child's class; "unplaced" without one.
  public var byGrade: [String: Int] = [:]
  public var classes: [ClassSize] = []
  /// Active staff by post.
  public var staffByPost: [String: Int] = [:]

  public init() {}
}

extension TenantShard {
  /// Counts for the district summary, read in one transaction. JSON fields are read by SQLite
  /// itself, so a kindergarten of hundreds of children costs about a millisecond.
  public func summary(agesOn september: CalendarDate) async throws -> KindergartenSummary {
    try await read { db in
      var summary = KindergartenSummary()
      var grades: [String: (name: String, grade: Grade, capacity: Int)] = [:]
      for row in try Row.fetchAll(db, sql: "SELECT id, data FROM class ORDER BY id") {
        let data = try JSONDecoder().decode(KindergartenClass.self, from: Data((row["data"] as String).utf8))
        grades[row["id"]] = (data.name, data.grade, data.capacity)
      }
      var perClass: [String: Int] = [:]
      let rows = try Row.fetchAll(
        db,
        sql: """
          SELECT json_extract(data, '$.gender') AS gender, json_extract(data, '$.idDocumentType') AS type,
                 json_extract(data, '$.birthDate.year') AS y, json_extract(data, '$.birthDate.month') AS m,
                 json_extract(data, '$.birthDate.day') AS d, classId
          FROM child WHERE state IN ('enrolled', 'pending_transfer_out')
          """)
      for row in rows {
        summary.children += 1
        summary.byGender[row["gender"] ?? "", default: 0] += 1
        summary.byDocumentType[row["type"] ?? "", default: 0] += 1
        let (y, m, d): (Int, Int, Int) = (row["y"] ?? 0, row["m"] ?? 0, row["d"] ?? 0)
        let age = september.year - y - ((m, d) > (september.month, september.day) ? 1 : 0)
        summary.byAge[age, default: 0] += 1
        if let classId: String = row["classId"], let grade = grades[classId] {
          perClass[classId, default: 0] += 1
          summary.byGrade[grade.grade.rawValue, default: 0] += 1
        } else {
          summary.byGrade["unplaced", default: 0] += 1
        }
      }
      summary.classes = grades.sorted { $0.key < $1.key }.map { id, c in
        KindergartenSummary.ClassSize(
          id: id, name: c.name, grade: c.grade.rawValue, capacity: c.capacity, children: perClass[id] ?? 0,
          typicalLow: c.grade.typicalSize.lowerBound, typicalHigh: c.grade.typicalSize.upperBound)
      }
      for row in try Row.fetchAll(
        db, sql: "SELECT json_extract(data, '$.post') AS post, COUNT(*) AS n FROM staff WHERE json_extract(data, '$.active') GROUP BY post")
      {
        summary.staffByPost[row["post"] ?? "", default: 0] += row["n"] as Int
      }
      return summary
    }
  }
}
