# Writes parse_email_cases.json: each case's input bytes and what packaging.metadata.parse_email
# (packaging 26.4) makes of it. Run: python make_cases.py > parse_email_cases.json
import json, sys
from packaging.metadata import parse_email
cases = {
 "basic": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: a>=1\nRequires-Dist: b; extra == 'x'\nProvides-Extra: x\nRequires-Python: >=3.8\nKeywords: a, b ,c\nProject-URL: Home, https://x\nProject-URL: Src,https://y\n\nThe body\nline 2\n",
 "folded": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nDescription: line one\n        line two\n   \nSummary: trailing  \nLicense:\n  MIT\n  more\n",
 "both_descriptions": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nDescription: header\n\nbody\n",
 "crlf": b"Metadata-Version: 2.1\r\nName: demo\r\nVersion: 1.0\r\nSummary: s\r\n\r\nbody\r\nmore\r\n",
 "cr_only": b"Metadata-Version: 2.1\rName: demo\rVersion: 1.0\r\rbody\r",
 "utf8": "Metadata-Version: 2.1\nName: démo\nVersion: 1.0\nAuthor: Zoë\n\nCafé ☕\n".encode(),
 "bad_utf8": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nAuthor: \xff\xfe\nSummary: ok\n\n\xff body\n",
 "bad_utf8_body_with_field": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nDescription: kept\n\n\xff body\n",
 "dup_single": b"Metadata-Version: 2.1\nName: a\nName: b\nVersion: 1.0\nKeywords: x\nKeywords: y\n",
 "dup_urls": b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nProject-URL: A, u\nProject-URL: A, v\nProject-URL: nocomma\n",
 "urls_nocomma": b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nProject-URL: nocomma\n",
 "unknown_and_case": b"metadata-version: 2.2\nNAME: a\nversion: 1.0\nX-Thing: y\nDynamic: Requires-Dist\ndynamic: License\nImport-Name:\n",
 "no_separator": b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nnot a header line\nSummary: in body\n",
 "from_lines": b"From someone\nMetadata-Version: 2.1\nName: a\nFrom middle\nVersion: 1.0\nFrom last\n",
 "from_last": b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nFrom last\n",
 "leading_cont": b" cont\nMetadata-Version: 2.1\nName: a\n: noname\n  cont of noname\nVersion: 1.0\n",
 "empty_body": b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\n\n",
 "no_trailing_newline": b"Metadata-Version: 2.1\nName: a\nVersion: 1.0",
 "space_name": b"Metadata-Version: 2.1\nName : a\nVersion: 1.0\n",
 "seps": "Metadata-Version: 2.1\nName: a\nVersion: 1.0\nKeywords: \x1ca\x1f, b\u00a0\n".encode(),
 "encoded_word": b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\nAuthor: =?utf-8?q?Zo=C3=AB?=\n",
 "tab_value": b"Metadata-Version: 2.1\nName:\ta\t\nVersion: 1.0\n",
}
out = {}
for k, v in cases.items():
    raw, unparsed = parse_email(v)
    out[k] = {"input": list(v), "json": raw}
json.dump(out, sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
