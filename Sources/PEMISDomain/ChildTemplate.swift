internal import CSV

/// The child information template as a CSV file (the national template's columns), for batch
/// import (docs/CHILDREN.md). Headers may be the English column names or the template's Chinese
/// ones; values may be the codes the national template uses (性别 1/2, 证件类型 1/6/7/8/9/A/Z)
/// or the names PEMIS uses.
public enum ChildTemplate {
  public enum Column: String, CaseIterable, Sendable {
    case name, gender
    case birthDate = "birth_date"
    case idDocumentType = "id_document_type"
    case idDocumentNumber = "id_document_number"
    case nationality, ethnicity
    case birthPlace = "birth_place"
    case householdRegister = "household_register"
    case householdType = "household_type"
    case hmtStatus = "hmt_status"
    case health
    case onlyChild = "only_child"
    case guardian1Name = "guardian1_name", guardian1Relation = "guardian1_relation", guardian1Phone = "guardian1_phone"
    case guardian2Name = "guardian2_name", guardian2Relation = "guardian2_relation", guardian2Phone = "guardian2_phone"
    case entryDate = "entry_date"
    case classId = "class_id"

    /// The kind of string the cell is, for the input boundary.
    var inputKind: InputKind {
      switch self {
      case .name, .guardian1Name, .guardian2Name: .name
      case .idDocumentNumber: .idNumber
      case .classId: .code
      default: .text
      }
    }

    /// The template's Chinese header.
    public var chinese: String {
      switch self {
      case .name: "姓名"
      case .gender: "性别"
      case .birthDate: "出生日期"
      case .idDocumentType: "身份证件类型"
      case .idDocumentNumber: "身份证件号"
      case .nationality: "国籍/地区"
      case .ethnicity: "民族"
      case .birthPlace: "出生地"
      case .householdRegister: "户口所在地"
      case .householdType: "户口性质"
      case .hmtStatus: "港澳台侨外"
      case .health: "健康状况"
      case .onlyChild: "是否独生子女"
      case .guardian1Name: "监护人1姓名"
      case .guardian1Relation: "监护人1关系"
      case .guardian1Phone: "监护人1电话"
      case .guardian2Name: "监护人2姓名"
      case .guardian2Relation: "监护人2关系"
      case .guardian2Phone: "监护人2电话"
      case .entryDate: "入园日期"
      case .classId: "班级"
      }
    }

    /// Columns a file must have; the others may be left out.
    public static let required: [Column] = [
      .name, .gender, .birthDate, .idDocumentType, .idDocumentNumber, .birthPlace, .householdRegister,
      .guardian1Name, .guardian1Relation, .guardian1Phone, .entryDate,
    ]
  }

  /// One data row, read: the child (nil when a value could not even be read) and every problem,
  /// each naming its column.
  public struct Row: Sendable {
    /// 1 = the first row after the header.
    public var number: Int
    public var child: ChildRecord?
    public var classId: String?
    public var errors: [DomainError]
  }

  /// The header line in English, for a blank template.
  public static var headerLine: String { Column.allCases.map(\.rawValue).joined(separator: ",") }

  /// Reads a whole file: the header, then every non-empty row, each validated on its own
  /// (`today` for the date rules). A file-level problem (no header, a missing column) throws.
  public static func read(_ text: String, today: CalendarDate) throws(DomainError) -> [Row] {
    let reader = try Reader(text)
    var rows: [Row] = []
    while let batch = reader.next(1000, today: today) { rows += batch }
    return rows
  }

  /// Reads a file a batch of rows at a time, so a caller can report progress on large files.
  /// Not for sharing between tasks.
  public final class Reader {
    let reader: CSVReader
    let index: [Column: Int]
    let columnCount: Int
    var number = 0

    public init(_ text: String) throws(DomainError) {
      do {
        reader = try CSVReader(string: text, hasHeaderRow: true, trimFields: true)
      } catch {
        throw DomainError(field: "file", rule: "header", "the file has no header row")
      }
      let header = (reader.headerRow ?? []).map { $0.trimmingWhitespace }
      var index: [Column: Int] = [:]
      for (i, title) in header.enumerated() {
        guard let column = Column.allCases.first(where: { $0.rawValue == title.lowercased() || $0.chinese == title }) else {
          throw DomainError(
            field: "file", rule: "header", "unknown column '\(title)' (column \(i + 1)); the template's columns are \(ChildTemplate.headerLine)")
        }
        if index[column] != nil { throw DomainError(field: "file", rule: "header", "column '\(title)' appears twice") }
        index[column] = i
      }
      let missing = Column.required.filter { index[$0] == nil }
      if !missing.isEmpty {
        throw DomainError(field: "file", rule: "header", "missing columns: \(missing.map(\.rawValue).joined(separator: ", "))")
      }
      self.index = index
      columnCount = header.count
    }

    /// Up to `count` more rows, validated; nil at the end of the file.
    public func next(_ count: Int, today: CalendarDate) -> [Row]? {
      var rows: [Row] = []
      while rows.count < count, let fields = reader.next() {
        number += 1
        if fields.allSatisfy({ $0.isEmpty }) { continue }
        if fields.count != columnCount {
          rows.append(
            Row(
              number: number, child: nil, classId: nil,
              errors: [DomainError(field: "row", rule: "columns", "has \(fields.count) values; the header has \(columnCount) columns")]))
          continue
        }
        rows.append(ChildTemplate.row(number: number, fields: fields, index: index, today: today))
      }
      return rows.isEmpty ? nil : rows
    }
  }

  static func row(number: Int, fields: [String], index: [Column: Int], today: CalendarDate) -> Row {
    // The input boundary for each cell first (a cell is a string from the network like any
    // field): no control characters, a length limit; a row that breaks it is not read further.
    let boundary = Column.allCases.compactMap { column in
      index[column].flatMap { InputText.violation(fields[$0], kind: column.inputKind, field: column.rawValue) }
    }
    if !boundary.isEmpty { return Row(number: number, child: nil, classId: nil, errors: boundary) }
    var errors: [DomainError] = []
    func value(_ column: Column) -> String { index[column].map { fields[$0] } ?? "" }
    func fail(_ column: Column, _ rule: String, _ message: String) {
      errors.append(DomainError(field: column.rawValue, rule: rule, message))
    }
    let gender = Self.gender(value(.gender))
    if gender == nil { fail(.gender, "enum", "must be male/female, 男/女 or 1/2") }
    let type = Self.documentType(value(.idDocumentType))
    if type == nil { fail(.idDocumentType, "enum", "must be a document type (1, 6, 7, 8, 9, A, Z or \(IDDocumentType.allCases.map(\.rawValue).joined(separator: ", ")))") }
    let birth = Self.date(value(.birthDate))
    if birth == nil { fail(.birthDate, "date", "must be a date like 2021-03-15") }
    let entry = Self.date(value(.entryDate))
    if entry == nil { fail(.entryDate, "date", "must be a date like 2024-09-01") }
    let onlyChildText = value(.onlyChild)
    let onlyChild = onlyChildText.isEmpty ? false : Self.yesNo(onlyChildText)
    if onlyChild == nil { fail(.onlyChild, "enum", "must be yes/no, 是/否 or 1/0") }
    var guardians: [ChildRecord.Guardian] = []
    for (n, r, p) in [(Column.guardian1Name, Column.guardian1Relation, Column.guardian1Phone), (.guardian2Name, .guardian2Relation, .guardian2Phone)] {
      let name = value(n)
      let relation = value(r)
      let phone = value(p)
      if name.isEmpty && relation.isEmpty && phone.isEmpty && n != .guardian1Name { continue }
      guardians.append(.init(name: name, relation: Self.relation(relation), phone: phone))
    }
    guard let gender, let type, let birth, let entry, let onlyChild else {
      return Row(number: number, child: nil, classId: nil, errors: errors)
    }
    let child = ChildRecord(
      name: value(.name), gender: gender, birthDate: birth, idDocumentType: type, idDocumentNumber: value(.idDocumentNumber).uppercased(),
      nationality: value(.nationality).isEmpty ? "CHN" : value(.nationality).uppercased(),
      ethnicity: value(.ethnicity).isEmpty ? "01" : value(.ethnicity), birthPlace: value(.birthPlace),
      householdRegister: value(.householdRegister), householdType: Self.householdType(value(.householdType)),
      hmtStatus: Self.hmtStatus(value(.hmtStatus)), health: Self.health(value(.health)), onlyChild: onlyChild,
      guardians: guardians, entryDate: entry)
    // The record's own rules, with their fields named as the template's columns.
    for violation in child.violations(today: today) {
      errors.append(DomainError(field: column(ofField: violation.field), rule: violation.rule, violation.message))
    }
    let classId = value(.classId)
    return Row(number: number, child: errors.isEmpty ? child : nil, classId: classId.isEmpty ? nil : classId, errors: errors)
  }

  /// "child.guardians[1].phone" → "guardian2_phone"; "child.birth_date" → "birth_date".
  public static func column(ofField field: String) -> String {
    var name = field.hasPrefix("child.") ? String(field.dropFirst(6)) : field
    if name.hasPrefix("guardians["), let close = name.firstIndex(of: "]"),
      let i = Int(name[name.index(name.startIndex, offsetBy: 10)..<close])
    {
      let rest = name[name.index(after: close)...].drop(while: { $0 == "." })
      name = "guardian\(i + 1)" + (rest.isEmpty ? "" : "_\(rest)")
    }
    return name
  }

  static func gender(_ text: String) -> Gender? {
    switch text.lowercased() {
    case "male", "m", "1", "男": .male
    case "female", "f", "2", "女": .female
    default: nil
    }
  }

  static func documentType(_ text: String) -> IDDocumentType? {
    if let type = IDDocumentType(rawValue: text.lowercased()) { return type }
    switch text.uppercased() {
    case "1", "居民身份证": return .residentID
    case "港澳台居民居住证": return .hkMacaoTaiwanPermit
    case "6", "7", "8", "港澳居民来往内地通行证", "台湾居民来往大陆通行证": return .travelPermit
    case "9", "外国人永久居留身份证": return .foreignPermanentResidence
    case "A", "护照": return .passport
    case "Z", "其他": return .other
    default: return nil
    }
  }

  /// 2021-03-15, 2021/3/15 or 20210315.
  static func date(_ text: String) -> CalendarDate? {
    let digits = text.filter(\.isNumber)
    if digits.count == 8, text.count == 8, let y = Int(digits.prefix(4)), let m = Int(digits.dropFirst(4).prefix(2)),
      let d = Int(digits.suffix(2))
    {
      let date = CalendarDate(year: y, month: m, day: d)
      return date.isValid ? date : nil
    }
    let parts = text.split(whereSeparator: { $0 == "-" || $0 == "/" || $0 == "." })
    guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return nil }
    let date = CalendarDate(year: y, month: m, day: d)
    return date.isValid ? date : nil
  }

  static func yesNo(_ text: String) -> Bool? {
    switch text.lowercased() {
    case "yes", "y", "true", "1", "是": true
    case "no", "n", "false", "0", "否": false
    default: nil
    }
  }

  /// Template words mapped to PEMIS's values; anything else is kept, for the record's rules to name.
  static func relation(_ text: String) -> String {
    switch text {
    case "父亲", "父": "father"
    case "母亲", "母": "mother"
    case "祖父", "祖母", "外祖父", "外祖母", "祖父母", "外祖父母": "grandparent"
    case "其他": "other"
    default: text.lowercased()
    }
  }

  static func householdType(_ text: String) -> String {
    switch text {
    case "": "resident"
    case "农业", "农业户口": "agricultural"
    case "非农业", "非农业户口": "non_agricultural"
    case "居民", "居民户口": "resident"
    case "无": "none"
    default: text.lowercased()
    }
  }

  static func hmtStatus(_ text: String) -> String {
    switch text {
    case "", "否", "无": "none"
    case "香港同胞": "hong_kong"
    case "澳门同胞": "macao"
    case "台湾同胞": "taiwan"
    case "华侨": "overseas_chinese"
    case "外籍人员", "外籍": "foreign"
    default: text.lowercased()
    }
  }

  static func health(_ text: String) -> String {
    switch text {
    case "", "健康", "健康或良好", "良好": "healthy"
    case "慢性病", "有慢性病": "chronic_condition"
    case "残疾": "disability"
    case "其他": "other"
    default: text.lowercased()
    }
  }
}
