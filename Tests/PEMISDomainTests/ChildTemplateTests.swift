import Testing

@testable import PEMISDomain

@Suite("Child template import and changes")
struct ChildTemplateTests {
  static let today = CalendarDate(year: 2026, month: 11, day: 29)
  static let english =
    "name,gender,birth_date,id_document_type,id_document_number,birth_place,household_register,guardian1_name,guardian1_relation,guardian1_phone,entry_date"

  @Test("English and Chinese headers, template codes and words, quoted fields")
  func reads() throws {
    let chinese = """
      姓名,性别,出生日期,身份证件类型,身份证件号,出生地,户口所在地,户口性质,港澳台侨外,健康状况,是否独生子女,监护人1姓名,监护人1关系,监护人1电话,监护人2姓名,监护人2关系,监护人2电话,入园日期,班级
      张小明,1,20220315,1,\(ChildTests.boyID),120116,120116,农业,否,健康,是,张伟,父亲,13800138000,"李娜, 母",母亲,13900001111,2026/9/1,C0001
      """
    let rows = try ChildTemplate.read(chinese, today: Self.today)
    #expect(rows.count == 1)
    let row = try #require(rows.first)
    #expect(row.errors.isEmpty, "\(row.errors)")
    let child = try #require(row.child)
    #expect(child.gender == .male)
    #expect(child.idDocumentType == .residentID)
    #expect(child.householdType == "agricultural")
    #expect(child.onlyChild)
    #expect(child.guardians.map(\.relation) == ["father", "mother"])
    #expect(child.guardians.last?.name == "李娜, 母")
    #expect(child.entryDate == CalendarDate(year: 2026, month: 9, day: 1))
    #expect(child.nationality == "CHN")
    #expect(row.classId == "C0001")

    let text = Self.english + "\nSophie,female,2022-07-14,A,e1234567,120116,120116,Pierre,father,13600136000,2026-09-01\n\n"
    let passport = try ChildTemplate.read(text, today: Self.today)
    #expect(passport.count == 1, "blank lines are skipped")
    #expect(passport.first?.child?.idDocumentType == .passport)
    #expect(passport.first?.child?.idDocumentNumber == "E1234567")
    #expect(passport.first?.classId == nil)
  }

  @Test("each row's problems are named by the template's columns")
  func rowErrors() throws {
    let text = [
      Self.english,
      "张小明,男,2022-03-15,1,120116202203151230,120116,120116,张伟,父亲,138,2026-09-01",
      "李四,unknown,2022-13-01,Q,,120116,120116,李伟,父亲,13800138000,someday",
      "王五,男,2022-03-15",
    ].joined(separator: "\n")
    let rows = try ChildTemplate.read(text, today: Self.today)
    #expect(rows.map(\.number) == [1, 2, 3])
    #expect(rows[0].child == nil)
    #expect(Set(rows[0].errors.map(\.field)) == ["id_document_number", "guardian1_phone"])
    #expect(Set(rows[1].errors.map(\.field)) == ["gender", "id_document_type", "birth_date", "entry_date"])
    #expect(rows[2].errors.map(\.field) == ["row"])
    #expect(rows[2].errors.first?.message == "has 3 values; the header has 11 columns")
  }

  @Test("each cell meets the input boundary: a control character or an oversized cell fails its row, naming the column")
  func cellBoundary() throws {
    let good = "张小明,男,2022-03-15,1,\(ChildTests.boyID),120116,120116,张伟,父亲,13800138000,2026-09-01"
    let text = [
      Self.english,
      // A NUL inside a name (stored cut at it once, hashed whole), a terminal escape in a
      // guardian's name, and a 5,000-byte birthplace: before, each became part of a record.
      "张小\u{0}明,男,2022-03-15,1,\(ChildTests.boyID),120116,120116,张伟,父亲,13800138000,2026-09-01",
      "张小明,男,2022-03-15,1,\(ChildTests.boyID),120116,120116,张\u{1B}[2J伟,父亲,13800138000,2026-09-01",
      "张小明,男,2022-03-15,1,\(ChildTests.boyID),\(String(repeating: "天", count: 1700)),120116,张伟,父亲,13800138000,2026-09-01",
      good,
    ].joined(separator: "\n")
    let rows = try ChildTemplate.read(text, today: Self.today)
    #expect(rows.count == 4)
    #expect(rows[0].child == nil && rows[0].errors.map(\.field) == ["name"], "\(rows[0].errors)")
    #expect(rows[1].child == nil && rows[1].errors.map(\.field) == ["guardian1_name"], "\(rows[1].errors)")
    #expect(rows[2].child == nil && rows[2].errors.map(\.field) == ["birth_place"], "\(rows[2].errors)")
    #expect(rows[3].errors.isEmpty && rows[3].child != nil, "\(rows[3].errors)")
  }

  @Test("file-level problems: a missing column, an unknown one, one twice")
  func header() {
    #expect(throws: DomainError.self) { try ChildTemplate.read("name,gender\n", today: Self.today) }
    do {
      _ = try ChildTemplate.read("name,gender\n", today: Self.today)
    } catch {
      #expect(error.message.hasPrefix("missing columns: birth_date, id_document_type, id_document_number"))
    }
    do {
      _ = try ChildTemplate.read(Self.english + ",remarks\n", today: Self.today)
      Issue.record("an unknown column was accepted")
    } catch {
      #expect(error.message.hasPrefix("unknown column 'remarks' (column 12)"))
    }
    do {
      _ = try ChildTemplate.read(Self.english + ",姓名\n", today: Self.today)
      Issue.record("a column twice was accepted")
    } catch {
      #expect(error.message == "column '姓名' appears twice")
    }
  }

  @Test("UTF-8 (with or without a byte-order mark) and GB18030, detected or named")
  func encodings() throws {
    // "王小明" in GB18030.
    let gb: [UInt8] = [0xCD, 0xF5, 0xD0, 0xA1, 0xC3, 0xF7]
    #expect(try TextEncoding.decode(gb, as: nil) == ("王小明", .gb18030))
    #expect(try TextEncoding.decode(gb, as: .gb18030).text == "王小明")
    #expect(try TextEncoding.decode([0xEF, 0xBB, 0xBF] + Array("王小明".utf8), as: nil) == ("王小明", .utf8))
    #expect(throws: DomainError.self) { try TextEncoding.decode(gb, as: .utf8) }
    // A lone lead byte at the end is neither.
    #expect(throws: DomainError.self) { try TextEncoding.decode([0x41, 0xCD], as: nil) }
    #expect(TextEncoding(name: "GBK") == .gb18030)
    #expect(TextEncoding(name: "latin1") == nil)
  }

  @Test("key information changes only through a request; other fields directly")
  func keyFields() throws {
    #expect(throws: DomainError.self) { try OtherField.parse(["health", "id_document_number"]) }
    #expect(throws: DomainError.self) { try OtherField.parse([]) }
    #expect(throws: DomainError.self) { try OtherField.parse(["shoe_size"]) }
    #expect(try OtherField.parse(["health", "guardians", "health"]) == [.health, .guardians])

    let child = ChildTests.child()
    let values = KeyChangeValues(name: "张晓明", idDocumentNumber: "120116202203151255")
    let differences = values.differences(from: child)
    #expect(differences.map(\.field) == [.name, .idDocumentNumber])
    #expect(differences.last?.old == IDDocuments.mask(ChildTests.boyID), "ID numbers are masked in a request")
    #expect(values.applied(to: child).name == "张晓明")
    #expect(KeyChangeValues(name: "张小明").differences(from: child).isEmpty)
    #expect(child.identityKey == "document:resident_id|\(ChildTests.boyID)")
    var noID = child
    noID.idDocumentType = .other
    noID.idDocumentNumber = ""
    #expect(noID.identityKey == "person:张小明|male|2022-03-15")
  }

  @Test("a changed record follows the lifecycle: open records only")
  func updateState() throws {
    #expect(try ChildEvent.changeInformation.apply(to: .enrolled) == .enrolled)
    // Not while pending transfer-out: the receiver would take the record as it was.
    for state in [ChildState.pendingTransferOut, .graduated, .left, .closed, .deceased, .transferredOut] {
      #expect(throws: DomainError.self) { try ChildEvent.changeInformation.apply(to: state) }
    }
  }

  @Test("months and years for the monthly audit and the paper archive")
  func months() {
    #expect(YearMonth(text: "2026-10") == YearMonth(year: 2026, month: 10))
    #expect(YearMonth(text: "2026-1") == nil)
    #expect(YearMonth(text: "2026-13") == nil)
    #expect(YearMonth(year: 2026, month: 12).next == YearMonth(year: 2027, month: 1))
    #expect(YearMonth(year: 2026, month: 1).previous == YearMonth(year: 2025, month: 12))
    #expect(YearMonth(year: 2024, month: 2).last == CalendarDate(year: 2024, month: 2, day: 29))
    #expect(CalendarDate(year: 2024, month: 2, day: 29).addingYears(1) == CalendarDate(year: 2025, month: 2, day: 28))
    #expect(CalendarDate(year: 2026, month: 7, day: 10).addingYears(1) == CalendarDate(year: 2027, month: 7, day: 10))
  }
}
