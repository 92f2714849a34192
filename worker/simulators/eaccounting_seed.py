"""Realistic reference data and starting documents for simulated eAccounting companies.

One profile per country (NO, SE, FI, NL): chart of accounts (per fiscal year, more than one
page of 50), VAT codes with the country's real rates, article account codings per rate with
domestic/EU/outside-EU sales accounts, terms of payment, units, bank accounts (one inactive),
five articles and 58 customers (domestic businesses and people, EU businesses and people,
outside the EU), so the customer list spans two pages. Fiscal years are last, this and next
calendar year. Ids are derived from the company id, so they are the same on every run.

Conventions: VAT rates are fractions everywhere (`VatRate` on vat codes, `VatRatePercent` on
codings, `PercentVat` on invoice rows): 25 % is 0.25. Only Dutch accounts carry
`ReferenceCode`, `Type` and `TypeDescription`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.simulators.eaccounting_state import Company, date_text, utc_text

_NAMESPACE = uuid.UUID("3f6d1a52-8c1e-4b7a-9a51-0e6f5c2d7b10")
COUNTRIES = ("NO", "SE", "FI", "NL")
#: Fiscal years are calendar years: last year, this year and next year.
FISCAL_YEAR_OFFSETS = (-1, 0, 1)
#: Units of each currency per euro; the simulator's fixed exchange rates.
PER_EUR = {
    "EUR": Decimal("1"),
    "NOK": Decimal("11.70"),
    "SEK": Decimal("11.20"),
    "DKK": Decimal("7.46"),
    "USD": Decimal("1.08"),
    "GBP": Decimal("0.85"),
    "CHF": Decimal("0.94"),
    "PLN": Decimal("4.30"),
}
#: Which account of a coding a sale uses, by situation.
SITUATION_ACCOUNT = {
    "domestic": "DomesticSalesSubjectToVatAccountNumber",
    "domestic_exempt": "DomesticSalesVatExemptAccountNumber",
    "domestic_reverse": "DomesticSalesSubjectToReversedConstructionVatAccountNumber",
    "eu_vat": "ForeignSalesSubjectToVatWithinEuAccountNumber",
    "eu_exempt": "ForeignSalesVatExemptWithinEuAccountNumber",
    "outside_eu": "ForeignSalesVatExemptOutsideEuAccountNumber",
    "third_party": "ForeignSalesSubjectToThirdPartySalesAccountNumber",
}
_CODING_KEYS = (
    "domestic",
    "domestic_exempt",
    "domestic_reverse",
    "eu_vat",
    "eu_exempt",
    "outside_eu",
    "third_party",
)


def stable_id(company_id: str, kind: str, key: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{company_id}:{kind}:{key}"))


def currency_rate(currency: str, base: str) -> Decimal:
    """Units of `base` per unit of `currency`."""
    return (PER_EUR[base] / PER_EUR[currency]).quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class Profile:
    country: str
    currency: str
    company: tuple[
        str, str, str, str, str, str, str
    ]  # name, address, postal, city, phone, org, vat
    accounts: str
    vat_codes: tuple[tuple[str, str, str, int | None], ...]  # code, description, rate, account
    codings: tuple[tuple[str, str, str, str, str], ...]  # name, english, type, rate, accounts
    units: tuple[tuple[str, str, str, str], ...]  # code, name, abbreviation, english abbreviation
    terms_words: tuple[str, str, str, str]  # "N days net", cash, current month, card
    banks: tuple[tuple[str, int, int, str, bool], ...]  # name, type, ledger, currency, active
    rounding: int
    default_terms_days: int
    cities: tuple[tuple[str, str], ...]
    business_words: tuple[tuple[str, ...], tuple[str, ...], str]
    articles: tuple[tuple[str, int, str, str], ...]  # name, coding index, price, unit code


NO = Profile(
    country="NO",
    currency="NOK",
    company=(
        "Demo Regnskap AS",
        "Storgata 12",
        "0155",
        "Oslo",
        "+47 22 00 00 00",
        "912345678",
        "NO912345678MVA",
    ),
    accounts="""
        1200 Maskiner og anlegg|1230 Personbiler|1250 Inventar|1280 Kontormaskiner
        1400 Varelager|1500 Kundefordringer|1530 Opptjent, ikke fakturert driftsinntekt
        1570 Andre kortsiktige fordringer|1700 Forskuddsbetalt kostnad|1900 Kontanter
        1920 Bankinnskudd|1921 Bankinnskudd valuta EUR|1950 Bankinnskudd for skattetrekk
        2000 Aksjekapital|2050 Annen egenkapital|2400 Leverandørgjeld|2600 Forskuddstrekk
        2700 Utgående merverdiavgift, høy sats|2701 Utgående merverdiavgift, middels sats
        2702 Utgående merverdiavgift, lav sats|2710 Inngående merverdiavgift, høy sats
        2711 Inngående merverdiavgift, middels sats|2740 Oppgjørskonto merverdiavgift
        2770 Skyldig arbeidsgiveravgift|2940 Skyldige feriepenger
        3000 Salgsinntekt, avgiftspliktig, høy sats|3010 Salgsinntekt, avgiftspliktig, middels sats
        3020 Salgsinntekt, avgiftspliktig, lav sats|3030 Salgsinntekt tjenester, høy sats
        3100 Salgsinntekt, avgiftsfri|3110 Salgsinntekt, omvendt avgiftsplikt
        3200 Salgsinntekt varer, utenfor avgiftsområdet
        3210 Salgsinntekt tjenester, utenfor avgiftsområdet|3400 Offentlig tilskudd
        3600 Leieinntekt|3700 Provisjonsinntekt|3900 Annen driftsrelatert inntekt
        4000 Innkjøp av råvarer og halvfabrikata|4300 Innkjøp av varer for videresalg
        4500 Fremmedytelse og underentreprise|5000 Lønn til ansatte|5090 Påløpte feriepenger
        5400 Arbeidsgiveravgift|5900 Annen personalkostnad|6010 Avskrivning på transportmidler
        6100 Frakt og transportkostnader|6300 Leie lokale|6340 Lys, varme|6540 Inventar
        6551 Datautstyr|6552 Programvare|6700 Revisjonshonorar
        6720 Honorar for økonomisk og juridisk bistand|6800 Kontorrekvisita
        6860 Møte, kurs, oppdatering|6900 Telefon|6940 Porto|7000 Drivstoff
        7140 Reisekostnad|7320 Reklamekostnad|7350 Representasjon|7500 Forsikringspremie
        7770 Bank- og kortgebyrer|7790 Annen kostnad|7795 Øreavrunding|7830 Tap på fordringer
        8040 Renteinntekt|8060 Valutagevinst (agio)|8140 Rentekostnad|8160 Valutatap (disagio)
        8300 Betalbar skatt|8800 Årsresultat
    """,
    vat_codes=(
        ("3", "Utgående mva, høy sats", "0.25", 2700),
        ("31", "Utgående mva, middels sats", "0.15", 2701),
        ("33", "Utgående mva, lav sats", "0.12", 2702),
        ("5", "Innenlands omsetning, fritatt for mva", "0", None),
        ("51", "Innenlands omsetning med omvendt avgiftsplikt", "0", None),
        ("52", "Utførsel av varer og tjenester", "0", None),
        ("6", "Omsetning utenfor merverdiavgiftsloven", "0", None),
        ("1", "Inngående mva, høy sats", "0.25", 2710),
        ("11", "Inngående mva, middels sats", "0.15", 2711),
        ("0", "Ingen mva-behandling", "0", None),
    ),
    codings=(
        ("Varer 25 %", "Goods 25 %", "Goods", "0.25", "3000 3100 3110 3000 3200 3200 3200"),
        (
            "Tjenester 25 %",
            "Services 25 %",
            "Service",
            "0.25",
            "3030 3100 3110 3030 3210 3210 3210",
        ),
        ("Næringsmidler 15 %", "Food 15 %", "Goods", "0.15", "3010 3100 3110 3010 3200 3200 3200"),
        (
            "Persontransport 12 %",
            "Passenger transport 12 %",
            "Service",
            "0.12",
            "3020 3100 3110 3020 3210 3210 3210",
        ),
        (
            "Avgiftsfritt salg",
            "VAT exempt sales",
            "Goods",
            "0",
            "3100 3100 3110 3100 3200 3200 3200",
        ),
    ),
    units=(
        ("pcs", "Stykk", "stk", "pcs"),
        ("h", "Timer", "t", "h"),
        ("day", "Dager", "d", "day"),
        ("km", "Kilometer", "km", "km"),
        ("kg", "Kilo", "kg", "kg"),
        ("m", "Meter", "m", "m"),
        ("l", "Liter", "l", "l"),
        ("month", "Måned", "mnd", "mth"),
    ),
    terms_words=("dager netto", "Kontant", "løpende måned", "Kort"),
    banks=(
        ("Driftskonto", 1, 1920, "NOK", True),
        ("Valutakonto EUR", 4, 1921, "EUR", True),
        ("Kontantkasse", 2, 1900, "NOK", True),
        ("Skattetrekkskonto", 7, 1950, "NOK", False),
    ),
    rounding=0,
    default_terms_days=14,
    cities=(
        ("0150", "Oslo"),
        ("5003", "Bergen"),
        ("7011", "Trondheim"),
        ("4006", "Stavanger"),
        ("9008", "Tromsø"),
        ("3015", "Drammen"),
    ),
    business_words=(
        ("Fjord", "Nordlys", "Vidde", "Bølge", "Skog", "Fjell", "Havn", "Elv"),
        ("Bygg", "Data", "Transport", "Konsult", "Handel", "Design", "Elektro"),
        "AS",
    ),
    articles=(
        ("Konsulenttime", 1, "1250.00", "h"),
        ("Programvarelisens", 0, "4990.00", "pcs"),
        ("Frakt", 1, "250.00", "pcs"),
        ("Kaffe 1 kg", 2, "189.90", "kg"),
        ("Togbillett", 3, "480.00", "pcs"),
    ),
)

SE = Profile(
    country="SE",
    currency="SEK",
    company=(
        "Demo Bokföring AB",
        "Drottninggatan 5",
        "111 51",
        "Stockholm",
        "+46 8 123 456 00",
        "556677-8899",
        "SE556677889901",
    ),
    accounts="""
        1220 Inventarier och verktyg|1240 Bilar och andra transportmedel|1250 Datorer
        1460 Lager av handelsvaror|1510 Kundfordringar|1630 Avräkning för skatter och avgifter
        1650 Momsfordran|1790 Övriga förutbetalda kostnader|1910 Kassa|1930 Företagskonto
        1940 Valutakonto EUR|2081 Aktiekapital|2091 Balanserad vinst eller förlust
        2099 Årets resultat|2440 Leverantörsskulder|2610 Utgående moms, 25 %
        2614 Utgående moms omvänd skattskyldighet, 25 %|2620 Utgående moms, 12 %
        2630 Utgående moms, 6 %|2640 Ingående moms|2650 Redovisningskonto för moms
        2710 Personalskatt|2731 Avräkning lagstadgade sociala avgifter|2920 Upplupna semesterlöner
        3001 Försäljning inom Sverige, 25 % moms|3002 Försäljning inom Sverige, 12 % moms
        3003 Försäljning inom Sverige, 6 % moms|3004 Försäljning inom Sverige, momsfri
        3041 Försäljning tjänster inom Sverige, 25 % moms
        3042 Försäljning tjänster inom Sverige, 12 % moms
        3043 Försäljning tjänster inom Sverige, 6 % moms
        3044 Försäljning tjänster inom Sverige, momsfri
        3105 Försäljning varor till land utanför EU
        3106 Försäljning varor till annat EU-land, momspliktig
        3108 Försäljning varor till annat EU-land, momsfri
        3231 Försäljning inom byggtjänstsektorn|3305 Försäljning tjänster till land utanför EU
        3308 Försäljning tjänster till annat EU-land|3740 Öres- och kronutjämning
        3960 Valutakursvinster på fordringar och skulder|4010 Inköp material och varor
        5010 Lokalhyra|5060 Städning och renhållning|5410 Förbrukningsinventarier
        5460 Förbrukningsmaterial|5611 Drivmedel för personbilar|5800 Resekostnader
        5910 Annonsering|6071 Representation, avdragsgill|6110 Kontorsmateriel
        6212 Mobiltelefon|6230 Datakommunikation|6250 Postbefordran
        6310 Företagsförsäkringar|6530 Redovisningstjänster|6540 IT-tjänster
        6570 Bankkostnader|6991 Övriga externa kostnader|7010 Löner till kollektivanställda
        7210 Löner till tjänstemän|7510 Arbetsgivaravgifter|7690 Övriga personalkostnader
        7832 Avskrivningar på inventarier|7960 Valutakursförluster|8310 Ränteintäkter
        8410 Räntekostnader|8910 Skatt som belastar årets resultat|8999 Årets resultat
    """,
    vat_codes=(
        ("10", "Utgående moms 25 %", "0.25", 2610),
        ("11", "Utgående moms 12 %", "0.12", 2620),
        ("12", "Utgående moms 6 %", "0.06", 2630),
        ("35", "Försäljning av varor till annat EU-land", "0", None),
        ("36", "Försäljning av varor utanför EU", "0", None),
        ("39", "Försäljning av tjänster till annat EU-land", "0", None),
        ("41", "Försäljning när köparen är skattskyldig i Sverige", "0", None),
        ("42", "Övrig försäljning m.m.", "0", None),
        ("48", "Ingående moms att dra av", "0.25", 2640),
        ("0", "Ingen moms", "0", None),
    ),
    codings=(
        ("Varor 25 %", "Goods 25 %", "Goods", "0.25", "3001 3004 3231 3106 3108 3105 3108"),
        ("Tjänster 25 %", "Services 25 %", "Service", "0.25", "3041 3044 3231 3041 3308 3305 3308"),
        ("Varor 12 %", "Goods 12 %", "Goods", "0.12", "3002 3004 3231 3106 3108 3105 3108"),
        ("Tjänster 12 %", "Services 12 %", "Service", "0.12", "3042 3044 3231 3042 3308 3305 3308"),
        ("Varor 6 %", "Goods 6 %", "Goods", "0.06", "3003 3004 3231 3106 3108 3105 3108"),
        ("Tjänster 6 %", "Services 6 %", "Service", "0.06", "3043 3044 3231 3043 3308 3305 3308"),
        (
            "Momsfri försäljning",
            "VAT exempt sales",
            "Goods",
            "0",
            "3004 3004 3231 3004 3108 3105 3108",
        ),
    ),
    units=(
        ("pcs", "Styck", "st", "pcs"),
        ("h", "Timmar", "tim", "h"),
        ("day", "Dagar", "dag", "day"),
        ("km", "Kilometer", "km", "km"),
        ("kg", "Kilogram", "kg", "kg"),
        ("m", "Meter", "m", "m"),
        ("l", "Liter", "l", "l"),
        ("month", "Månad", "mån", "mth"),
    ),
    terms_words=("dagar netto", "Kontant", "innevarande månad", "Kort"),
    banks=(
        ("Företagskonto", 1, 1930, "SEK", True),
        ("Valutakonto EUR", 4, 1940, "EUR", True),
        ("Kassa", 2, 1910, "SEK", True),
        ("Skattekonto", 7, 1630, "SEK", False),
    ),
    rounding=1,
    default_terms_days=30,
    cities=(
        ("111 22", "Stockholm"),
        ("411 01", "Göteborg"),
        ("211 20", "Malmö"),
        ("753 20", "Uppsala"),
        ("903 26", "Umeå"),
        ("582 24", "Linköping"),
    ),
    business_words=(
        ("Norrsken", "Fjäll", "Björk", "Granit", "Älv", "Skärgård", "Vinter", "Solvik"),
        ("Bygg", "Data", "Konsult", "Transport", "Handel", "Design", "El"),
        "AB",
    ),
    articles=(
        ("Konsulttimme", 1, "1100.00", "h"),
        ("Programvarulicens", 0, "3990.00", "pcs"),
        ("Frakt", 1, "195.00", "pcs"),
        ("Kaffe 1 kg", 2, "149.00", "kg"),
        ("Facklitteratur", 4, "349.00", "pcs"),
    ),
)

FI = Profile(
    country="FI",
    currency="EUR",
    company=(
        "Demo Kirjanpito Oy",
        "Mannerheimintie 10",
        "00100",
        "Helsinki",
        "+358 9 1234 5678",
        "1234567-8",
        "FI12345678",
    ),
    accounts="""
        1100 Koneet ja kalusto|1150 Atk-laitteet|1500 Aineet ja tarvikkeet|1700 Myyntisaamiset
        1763 Arvonlisäverosaamiset|1800 Siirtosaamiset|1900 Käteisvarat|1910 Pankkitili
        1911 Valuuttatili USD|2000 Osakepääoma|2250 Edellisten tilikausien voitto
        2370 Tilikauden voitto|2870 Ostovelat|2920 Ennakonpidätysvelka
        2935 Myynnin arvonlisävero 25,5 %|2936 Myynnin arvonlisävero 14 %
        2937 Myynnin arvonlisävero 10 %|2938 Ostojen arvonlisävero|2939 Arvonlisäverovelka
        2960 Siirtovelat|3000 Myynti 25,5 %|3010 Myynti 14 %|3020 Myynti 10 %
        3030 Veroton myynti|3040 Palvelumyynti 25,5 %|3300 Tavaramyynti muihin EU-maihin
        3310 Palvelumyynti muihin EU-maihin|3400 Vienti EU:n ulkopuolelle
        3420 Palvelumyynti EU:n ulkopuolelle|3460 Rakentamispalvelujen myynti
        3700 Pyöristyserot|3900 Muut liiketoiminnan tuotot|4000 Ostot|4450 Alihankinnat
        5000 Palkat|5300 Lomapalkat|6130 Eläkekulut|6410 Sosiaaliturvamaksut
        7000 Muut henkilösivukulut|7200 Vuokrat|7250 Sähkö ja lämmitys|7300 Ajoneuvokulut
        7400 Koneiden ja kaluston kulut|7600 Matkakulut|7700 Markkinointikulut
        7750 Edustuskulut|7800 Atk-kulut|7810 Puhelinkulut|7850 Postikulut
        7900 Toimistotarvikkeet|7950 Kirjanpito ja tilintarkastus|7960 Vakuutukset
        7990 Pankkikulut|8000 Muut liikekulut|8400 Suunnitelman mukaiset poistot
        9100 Kurssivoitot|9160 Korkotuotot|9440 Korkokulut|9500 Kurssitappiot
        9900 Tuloverot|9990 Tilikauden tulos
    """,
    vat_codes=(
        ("301", "Myynnin ALV 25,5 %", "0.255", 2935),
        ("302", "Myynnin ALV 14 %", "0.14", 2936),
        ("303", "Myynnin ALV 10 %", "0.10", 2937),
        ("304", "Veroton myynti", "0", None),
        ("311", "Tavaramyynti muihin EU-maihin", "0", None),
        ("312", "Palvelumyynti muihin EU-maihin", "0", None),
        ("313", "Vienti EU:n ulkopuolelle", "0", None),
        ("314", "Rakentamispalvelujen myynti (käännetty verovelvollisuus)", "0", None),
        ("401", "Ostojen ALV 25,5 %", "0.255", 2938),
        ("0", "Ei arvonlisäveroa", "0", None),
    ),
    codings=(
        ("Tavarat 25,5 %", "Goods 25.5 %", "Goods", "0.255", "3000 3030 3460 3000 3300 3400 3300"),
        (
            "Palvelut 25,5 %",
            "Services 25.5 %",
            "Service",
            "0.255",
            "3040 3030 3460 3040 3310 3420 3310",
        ),
        ("Elintarvikkeet 14 %", "Food 14 %", "Goods", "0.14", "3010 3030 3460 3010 3300 3400 3300"),
        (
            "Kirjat ja lääkkeet 10 %",
            "Books and medicines 10 %",
            "Goods",
            "0.10",
            "3020 3030 3460 3020 3300 3400 3300",
        ),
        ("Veroton myynti", "VAT exempt sales", "Goods", "0", "3030 3030 3460 3030 3300 3400 3300"),
    ),
    units=(
        ("pcs", "Kappale", "kpl", "pcs"),
        ("h", "Tunti", "h", "h"),
        ("day", "Päivä", "pv", "day"),
        ("km", "Kilometri", "km", "km"),
        ("kg", "Kilogramma", "kg", "kg"),
        ("m", "Metri", "m", "m"),
        ("l", "Litra", "l", "l"),
        ("month", "Kuukausi", "kk", "mth"),
    ),
    terms_words=("päivää netto", "Käteinen", "kuluva kuukausi", "Kortti"),
    banks=(
        ("Käyttötili", 1, 1910, "EUR", True),
        ("Valuuttatili USD", 4, 1911, "USD", True),
        ("Käteiskassa", 2, 1900, "EUR", True),
        ("Vanha tili", 1, 1910, "EUR", False),
    ),
    rounding=0,
    default_terms_days=14,
    cities=(
        ("00100", "Helsinki"),
        ("02100", "Espoo"),
        ("33100", "Tampere"),
        ("20100", "Turku"),
        ("90100", "Oulu"),
        ("40100", "Jyväskylä"),
    ),
    business_words=(
        ("Revontuli", "Järvi", "Koivu", "Kallio", "Aalto", "Tunturi", "Saari", "Metsä"),
        ("Rakennus", "Data", "Konsultointi", "Kuljetus", "Kauppa", "Design", "Sähkö"),
        "Oy",
    ),
    articles=(
        ("Konsultointitunti", 1, "120.00", "h"),
        ("Ohjelmistolisenssi", 0, "390.00", "pcs"),
        ("Rahti", 1, "19.90", "pcs"),
        ("Kahvi 1 kg", 2, "14.90", "kg"),
        ("Ammattikirja", 3, "39.00", "pcs"),
    ),
)

NL = Profile(
    country="NL",
    currency="EUR",
    company=(
        "Demo Boekhouding B.V.",
        "Damrak 1",
        "1012 LG",
        "Amsterdam",
        "+31 20 123 4567",
        "12345678",
        "NL123456789B01",
    ),
    # number name|reference code|type: only Dutch accounts carry the last two.
    accounts="""
        0100 Gebouwen;BMvaBegBeg;1|0200 Inventaris;BMvaBedBei;1|0210 Computers;BMvaBedBei;1
        0300 Vervoermiddelen;BMvaTraTra;1|0500 Aandelenkapitaal;BEivGokGea;3
        0510 Algemene reserve;BEivOvrOvr;3|0600 Resultaat boekjaar;BEivOreOre;3|1000 Kas;BLimKasKas;1
        1100 Bank;BLimBanRba;1|1110 Bank USD;BLimBanRbb;1|1300 Debiteuren;BVorDebHad;1
        1400 Crediteuren;BSchCreHac;2|1500 Af te dragen btw hoog;BSchBtwAfh;2
        1510 Af te dragen btw laag;BSchBtwAfl;2|1520 Af te dragen btw verlegd;BSchBtwAfv;2
        1530 Voorbelasting;BSchBtwVoo;2|1540 Btw afdracht;BSchBtwAfd;2|1600 Loonheffing;BSchLhe;2
        1700 Nog te ontvangen bedragen;BVorOvrNto;1|1710 Vooruitbetaalde bedragen;BVorOvrVob;1
        1800 Nog te betalen kosten;BSchOvrNtb;2|3000 Voorraad handelsgoederen;BVrdHanVoo;1
        4000 Brutolonen;WPerLesSal;6|4010 Sociale lasten;WPerSocSoc;6
        4020 Pensioenpremies;WPerPenPen;6|4100 Huur bedrijfspand;WBedHuiHui;6
        4110 Energiekosten;WBedHuiEne;6|4120 Schoonmaakkosten;WBedHuiSch;6
        4200 Autokosten brandstof;WBedAutBra;6|4210 Autokosten onderhoud;WBedAutOnd;6
        4300 Kantoorbenodigdheden;WBedKanKan;6|4310 Telefoon en internet;WBedKanTel;6
        4320 Porti;WBedKanPor;6|4330 Software en licenties;WBedKanSof;6
        4400 Reclame en advertenties;WBedVkoRec;6|4410 Representatie;WBedVkoRep;6
        4500 Reiskosten;WBedVkoRei;6|4600 Accountantskosten;WBedAlkAcc;6
        4610 Advieskosten;WBedAlkAdv;6|4700 Verzekeringen;WBedAlkVer;6
        4800 Afschrijving inventaris;WAfsMvaBei;6|4810 Afschrijving computers;WAfsMvaBec;6
        4900 Bankkosten;WBedAlkBan;6|4990 Overige algemene kosten;WBedAlkOal;6
        7000 Inkoopwaarde van de omzet;WKprInkInk;5|7100 Inkopen binnen EU;WKprInkEu;5
        7200 Inkopen buiten EU;WKprInkBeu;5|8000 Omzet hoog tarief;WOmzNopOlh;4
        8010 Omzet laag tarief;WOmzNopOll;4|8020 Omzet vrijgesteld;WOmzNopOlv;4
        8030 Omzet verlegd;WOmzNopOvr;4|8040 Omzet diensten hoog tarief;WOmzNodOdh;4
        8050 Omzet diensten laag tarief;WOmzNodOdl;4|8100 Omzet goederen binnen EU;WOmzNopOeu;4
        8110 Omzet diensten binnen EU;WOmzNodOeu;4|8200 Omzet goederen buiten EU;WOmzNopObe;4
        8210 Omzet diensten buiten EU;WOmzNodObe;4|8300 Omzet EU particulieren;WOmzNopOep;4
        8900 Betalingsverschillen;WOvbOvbBet;7|9000 Rentebaten;WFbeRbaRba;7
        9010 Rentelasten;WFbeRlaRla;7|9100 Koersverschillen;WFbeKoeKoe;7
        9200 Vennootschapsbelasting;WBelBelBel;8|9900 Afrondingsverschillen;WOvbOvbAfr;7
    """,
    vat_codes=(
        ("1", "Btw hoog tarief", "0.21", 1500),
        ("2", "Btw laag tarief", "0.09", 1510),
        ("3", "Btw 0 %", "0", None),
        ("4", "Btw verlegd binnenland", "0", 1520),
        ("5", "Leveringen naar landen binnen de EU", "0", None),
        ("6", "Leveringen naar landen buiten de EU", "0", None),
        ("7", "Voorbelasting hoog tarief", "0.21", 1530),
        ("8", "Voorbelasting laag tarief", "0.09", 1530),
        ("0", "Geen btw", "0", None),
    ),
    codings=(
        (
            "Omzet hoog (21 %)",
            "Sales high (21 %)",
            "Goods",
            "0.21",
            "8000 8020 8030 8300 8100 8200 8100",
        ),
        (
            "Omzet diensten hoog (21 %)",
            "Services high (21 %)",
            "Service",
            "0.21",
            "8040 8020 8030 8040 8110 8210 8110",
        ),
        (
            "Omzet laag (9 %)",
            "Sales low (9 %)",
            "Goods",
            "0.09",
            "8010 8020 8030 8300 8100 8200 8100",
        ),
        (
            "Omzet diensten laag (9 %)",
            "Services low (9 %)",
            "Service",
            "0.09",
            "8050 8020 8030 8050 8110 8210 8110",
        ),
        (
            "Omzet vrijgesteld (0 %)",
            "Exempt sales (0 %)",
            "Goods",
            "0",
            "8020 8020 8030 8020 8100 8200 8100",
        ),
    ),
    units=(
        ("pcs", "Stuks", "st", "pcs"),
        ("h", "Uur", "u", "h"),
        ("day", "Dag", "d", "day"),
        ("km", "Kilometer", "km", "km"),
        ("kg", "Kilogram", "kg", "kg"),
        ("m", "Meter", "m", "m"),
        ("l", "Liter", "l", "l"),
        ("month", "Maand", "mnd", "mth"),
    ),
    terms_words=("dagen netto", "Contant", "lopende maand", "Pinbetaling"),
    banks=(
        ("Zakelijke rekening", 1, 1100, "EUR", True),
        ("Valutarekening USD", 4, 1110, "USD", True),
        ("Kas", 2, 1000, "EUR", True),
        ("Oude rekening", 1, 1100, "EUR", False),
    ),
    rounding=0,
    default_terms_days=30,
    cities=(
        ("1012 AB", "Amsterdam"),
        ("3011 AA", "Rotterdam"),
        ("2511 CV", "Den Haag"),
        ("3511 AB", "Utrecht"),
        ("5611 AA", "Eindhoven"),
        ("9711 AA", "Groningen"),
    ),
    business_words=(
        ("Molen", "Tulp", "Polder", "Dijk", "Gracht", "Noordzee", "Duin", "Kade"),
        ("Bouw", "Data", "Advies", "Transport", "Handel", "Design", "Techniek"),
        "B.V.",
    ),
    articles=(
        ("Adviesuur", 1, "95.00", "h"),
        ("Softwarelicentie", 0, "349.00", "pcs"),
        ("Verzendkosten", 1, "12.50", "pcs"),
        ("Koffie 1 kg", 2, "18.95", "kg"),
        ("Vakboek", 2, "45.00", "pcs"),
    ),
)

PROFILES = {p.country: p for p in (NO, SE, FI, NL)}
ACCOUNT_TYPES = {
    1: "Activa",
    2: "Passiva",
    3: "Eigen vermogen",
    4: "Omzet",
    5: "Kostprijs van de omzet",
    6: "Bedrijfskosten",
    7: "Financiële baten en lasten",
    8: "Belastingen",
}
#: country, currency, name, city, postal code, VAT number ("" if none), private person
_FOREIGN_CUSTOMERS = (
    ("DE", "EUR", "Berliner Technik GmbH", "Berlin", "10115", "DE123456789", False),
    ("DK", "DKK", "Københavns Design ApS", "København", "1050", "DK12345678", False),
    ("FR", "EUR", "Atelier Lumière SARL", "Lyon", "69001", "FR12345678901", False),
    ("SE", "SEK", "Göteborgs Hamn Service AB", "Göteborg", "41101", "SE556011223301", False),
    ("NL", "EUR", "Rotterdam Logistics B.V.", "Rotterdam", "3011AA", "NL001234567B01", False),
    ("FI", "EUR", "Tampereen Kone Oy", "Tampere", "33100", "FI23456789", False),
    ("NO", "NOK", "Bergen Shipping AS", "Bergen", "5003", "NO987654321MVA", False),
    ("DE", "EUR", "Anna Schmidt", "München", "80331", "", True),
    ("ES", "EUR", "Carlos García", "Madrid", "28001", "", True),
    ("US", "USD", "Brooklyn Coffee Roasters Inc.", "New York", "11201", "", False),
    ("GB", "GBP", "Thames Analytics Ltd", "London", "EC1A 1BB", "", False),
    ("CH", "CHF", "Alpen Uhren AG", "Zürich", "8001", "", False),
)
_PERSON_NAMES = {
    "NO": (
        "Ola Nordmann",
        "Kari Hansen",
        "Per Johansen",
        "Ingrid Berg",
        "Lars Olsen",
        "Sigrid Lie",
    ),
    "SE": (
        "Anna Andersson",
        "Erik Johansson",
        "Maria Karlsson",
        "Lars Nilsson",
        "Karin Eriksson",
        "Johan Larsson",
    ),
    "FI": (
        "Matti Virtanen",
        "Anna Korhonen",
        "Juha Mäkinen",
        "Liisa Nieminen",
        "Mikko Hämäläinen",
        "Sari Laine",
    ),
    "NL": (
        "Jan de Vries",
        "Sanne Jansen",
        "Pieter Bakker",
        "Emma Visser",
        "Daan Smit",
        "Lotte Meijer",
    ),
}
DOMESTIC_BUSINESS_COUNT = 41
SEED_NOW = datetime(2025, 1, 2, 8, 0, 0)


def build_company(company_id: str, country: str, current_year: int) -> Company:
    profile = PROFILES[country]
    years = [current_year + offset for offset in FISCAL_YEAR_OFFSETS]
    fiscal_years = [_fiscal_year(company_id, year) for year in years]
    company = Company(
        id=company_id,
        country=country,
        settings={},
        fiscal_years=fiscal_years,
        accounts={fy["Id"]: _accounts(profile, fy["Id"]) for fy in fiscal_years},
        vat_codes=[_vat_code(company_id, seed) for seed in profile.vat_codes],
        codings=[_coding(company_id, index, seed) for index, seed in enumerate(profile.codings)],
        terms=_terms(company_id, profile),
        units=[_unit(company_id, seed) for seed in profile.units],
        bank_accounts=[_bank(company_id, i, seed) for i, seed in enumerate(profile.banks)],
    )
    company.settings = _settings(company, profile)
    seed_documents(company)
    return company


def seed_documents(company: Company) -> None:
    """(Re)creates the starting articles and customers and forgets every document."""
    profile = PROFILES[company.country]
    company.articles = {a["Id"]: a for a in _articles(company, profile)}
    company.customers = {c["Id"]: c for c in _customers(company, profile)}
    company.drafts.clear()
    company.invoices.clear()
    company.payments.clear()
    company.next_invoice_number = 10001
    company.next_customer_number = 1001 + len(company.customers)
    company.next_article_number = 100 + len(company.articles)
    company.next_voucher_number = 1


def _settings(company: Company, profile: Profile) -> dict[str, Any]:
    name, address, postal, city, phone, org, vat = profile.company
    default_terms = next(
        t for t in company.terms if t["NumberOfDays"] == profile.default_terms_days
    )
    return {
        "Name": name,
        "Address1": address,
        "Address2": None,
        "PostalCode": postal,
        "City": city,
        "CountryCode": profile.country,
        "CurrencyCode": profile.currency,
        "Phone": phone,
        "Email": f"post@{company.id}.example",
        "CorporateIdentityNumber": org,
        "VatCode": vat,
        "CompanyIdentifier": company.id,
        "CompanyStatus": 1,
        "ProductVariant": 1,
        "TypeOfBusiness": 1,
        "ActivatedModules": ["Invoicing", "Bookkeeping"],
        "TermsOfPaymentId": default_terms["Id"],
        "DomesticCurrencyRounding": profile.rounding,
        "KeepOriginalDraftDate": False,
        "ShowPricesExclVatPC": True,
        "UsesPaymentReferenceNumber": profile.country in ("NO", "FI", "SE"),
        "UsesRotReducedInvoicing": False,
        "UsesGreenTechnology": False,
        "UsesReverseConstructionVat": True,
        "UsesMoss": False,
        "UseAutomaticVatCalculation": profile.country != "NL",
        "AccountNumberDigits": 4,
        "VatPeriod": 6 if profile.country == "NO" else 3,
    }


def _fiscal_year(company_id: str, year: int) -> dict[str, Any]:
    return {
        "Id": stable_id(company_id, "fiscalyear", year),
        "StartDate": f"{year}-01-01T00:00:00",
        "EndDate": f"{year}-12-31T00:00:00",
        "IsLockedForAccounting": False,
        "BookkeepingMethod": 0,
    }


def _accounts(profile: Profile, fiscal_year_id: str) -> list[dict[str, Any]]:
    entries = [e.strip() for line in profile.accounts.strip().splitlines() for e in line.split("|")]
    return [_account(profile, fiscal_year_id, entry) for entry in entries if entry]


def _account(profile: Profile, fiscal_year_id: str, entry: str) -> dict[str, Any]:
    number, _, rest = entry.partition(" ")
    name, *dutch = rest.split(";")
    vat_code = _account_vat_code(profile, int(number))
    account: dict[str, Any] = {
        "Name": name,
        "Number": number,
        "FiscalYearId": fiscal_year_id,
        "VatCodeId": None,
        "VatCodeDescription": vat_code,
        "IsActive": True,
        "IsProjectAllowed": number[0] in "345678",
        "IsCostCenterAllowed": number[0] in "345678",
        "IsBlockedForManualBooking": False,
        "CreatedUtc": utc_text(SEED_NOW),
        "ModifiedUtc": utc_text(SEED_NOW),
    }
    if dutch:
        reference_code, account_type = dutch
        account["ReferenceCode"] = reference_code
        account["Type"] = int(account_type)
        account["TypeDescription"] = ACCOUNT_TYPES[int(account_type)]
    return account


def _account_vat_code(profile: Profile, number: int) -> str | None:
    return next((desc for _, desc, _, acc in profile.vat_codes if acc == number), None)


def _vat_code(company_id: str, seed: tuple[str, str, str, int | None]) -> dict[str, Any]:
    code, description, rate, account = seed
    return {
        "Id": stable_id(company_id, "vatcode", code),
        "Code": code,
        "Description": description,
        "VatRate": Decimal(rate),
        "OssCodeType": 0,
        "RelatedAccounts": {
            "AccountNumber1": account,
            "AccountNumber2": None,
            "AccountNumber3": None,
        },
    }


def _coding(company_id: str, index: int, seed: tuple[str, str, str, str, str]) -> dict[str, Any]:
    name, english, kind, rate, accounts = seed
    numbers = [int(n) for n in accounts.split()]
    coding: dict[str, Any] = {
        "Id": stable_id(company_id, "coding", index),
        "Name": name,
        "NameEnglish": english,
        "Type": kind,
        "VatRate": f"{(Decimal(rate) * 100).normalize():f} %",
        "VatRatePercent": Decimal(rate),
        "IsActive": True,
        "ForeignSalesSubjectToMossAccountNumber": None,
        "ChangedUtc": utc_text(SEED_NOW),
    }
    for key, number in zip(_CODING_KEYS, numbers, strict=True):
        coding[SITUATION_ACCOUNT[key]] = number
    return coding


def _terms(company_id: str, profile: Profile) -> list[dict[str, Any]]:
    word, cash, month, card = profile.terms_words
    rows: list[dict[str, Any]] = [
        _term(company_id, f"{days} {word}", f"{days} days net", days, 0)
        for days in (10, 14, 20, 30)
    ]
    rows.append(_term(company_id, cash, "Cash", 0, 2))
    rows.append(_term(company_id, f"30 {word} ({month})", "Current month + 30", 30, 1))
    rows.append(_term(company_id, card, "Card payment", 0, 3))
    return rows


def _term(company_id: str, name: str, english: str, days: int, kind: int) -> dict[str, Any]:
    texts = {0: "Normal", 1: "CurrentMonth", 2: "Cash", 3: "CardPayment"}
    return {
        "Id": stable_id(company_id, "terms", f"{kind}:{days}"),
        "Name": name,
        "NameEnglish": english,
        "NumberOfDays": days,
        "TermsOfPaymentTypeId": kind,
        "TermsOfPaymentTypeText": texts[kind],
        "AvailableForSales": True,
        "AvailableForPurchase": True,
    }


def _unit(company_id: str, seed: tuple[str, str, str, str]) -> dict[str, Any]:
    code, name, abbreviation, english = seed
    return {
        "Id": stable_id(company_id, "unit", code),
        "Code": code,
        "Name": name,
        "Abbreviation": abbreviation,
        "AbbreviationEnglish": english,
    }


def _bank(company_id: str, index: int, seed: tuple[str, int, int, str, bool]) -> dict[str, Any]:
    name, kind, ledger, currency, active = seed
    descriptions = {1: "ChequeAccount", 2: "CashAccount", 4: "CurrencyAccount", 7: "TaxAccount"}
    return {
        "Id": stable_id(company_id, "bank", index),
        "Name": name,
        "BankAccountType": kind,
        "BankAccountTypeDescription": descriptions[kind],
        "LedgerAccountNumber": ledger,
        "CurrencyCode": currency,
        "IsActive": active,
        "IsDefaultChequeAccount": index == 0,
        "Bban": None if kind in (2, 7) else f"{1200 + index:04d}{ledger:04d}{index:03d}",
        "Iban": None,
        "Bank": None,
        "HasActiveBankAgreement": False,
        "ModifiedUtc": utc_text(SEED_NOW),
    }


def _articles(company: Company, profile: Profile) -> list[dict[str, Any]]:
    units = {u["Code"]: u for u in company.units}
    return [
        _article(company, index, seed, units[seed[3]])
        for index, seed in enumerate(profile.articles)
    ]


def _article(
    company: Company, index: int, seed: tuple[str, int, str, str], unit: dict[str, Any]
) -> dict[str, Any]:
    name, coding_index, price, _ = seed
    coding = company.codings[coding_index]
    return {
        "Id": stable_id(company.id, "article", index),
        "IsActive": True,
        "Number": str(100 + index),
        "Name": name,
        "NameEnglish": None,
        "NetPrice": Decimal(price),
        "GrossPrice": (Decimal(price) * (1 + coding["VatRatePercent"])).quantize(Decimal("0.01")),
        "CodingId": coding["Id"],
        "CodingName": coding["Name"],
        "UnitId": unit["Id"],
        "UnitName": unit["Name"],
        "UnitAbbreviation": unit["Abbreviation"],
        "IsServiceArticle": coding["Type"] == "Service",
        "StockBalance": Decimal(0),
        "CreatedUtc": utc_text(SEED_NOW),
        "ChangedUtc": utc_text(SEED_NOW),
    }


def _customers(company: Company, profile: Profile) -> list[dict[str, Any]]:
    prefixes, trades, suffix = profile.business_words
    rows: list[tuple[str, str, str, str, str, str, bool]] = []
    for index in range(DOMESTIC_BUSINESS_COUNT):
        name = f"{prefixes[index % len(prefixes)]} {trades[index % len(trades)]} {suffix}"
        postal, city = profile.cities[index % len(profile.cities)]
        rows.append((profile.country, profile.currency, name, city, postal, "", False))
    for index, person in enumerate(_PERSON_NAMES[profile.country]):
        postal, city = profile.cities[index % len(profile.cities)]
        rows.append((profile.country, profile.currency, person, city, postal, "", True))
    rows.extend(c for c in _FOREIGN_CUSTOMERS if c[0] != profile.country)
    return [_customer(company, index, row) for index, row in enumerate(rows)]


def _customer(
    company: Company, index: int, row: tuple[str, str, str, str, str, str, bool]
) -> dict[str, Any]:
    country, currency, name, city, postal, vat_number, private = row
    number = 1001 + index
    terms = company.find(company.terms, company.settings["TermsOfPaymentId"]) or company.terms[0]
    domestic_vat = None if private or country != company.country else f"{country}{number:09d}"
    return {
        "Id": stable_id(company.id, "customer", number),
        "CustomerNumber": str(number),
        "Name": name,
        "IsPrivatePerson": private,
        "IsActive": True,
        "InvoiceAddress1": f"{_street(country)} {index % 40 + 1}",
        "InvoiceAddress2": None,
        "InvoicePostalCode": postal,
        "InvoiceCity": city,
        "InvoiceCountryCode": country,
        "CurrencyCode": currency,
        "CorporateIdentityNumber": None if private else f"{number:08d}",
        "VatNumber": vat_number or domestic_vat,
        "EmailAddress": f"invoice{number}@customer.example",
        "TermsOfPaymentId": terms["Id"],
        "TermsOfPayment": dict(terms),
        "ReverseChargeOnConstructionServices": False,
        "IsFutureInvoiceDateAllowed": True,
        "ChangedUtc": utc_text(SEED_NOW),
        "LastInvoiceDate": None,
    }


def _street(country: str) -> str:
    return {"NO": "Kongens gate", "SE": "Storgatan", "FI": "Kauppakatu", "NL": "Kerkstraat"}.get(
        country, "Main Street"
    )


def fiscal_year_for(company: Company, moment: datetime) -> dict[str, Any] | None:
    day = date_text(moment)
    return next(
        (fy for fy in company.fiscal_years if fy["StartDate"] <= day <= fy["EndDate"]), None
    )
