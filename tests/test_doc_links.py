"""Every relative Markdown link in README.md and docs/*.md points to a file that exists, and
a link to a heading (`page.md#heading`) to a heading that exists, as GitHub names them."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted([os.path.join(ROOT, 'README.md')] + glob.glob(os.path.join(ROOT, 'docs', '*.md')))
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
FENCE = re.compile(r'^(```|~~~).*?^\1', re.M | re.S)
CODE = re.compile(r'`[^`\n]*`')


def _prose(text):
  """The text without fenced code blocks and inline code, where links are not links."""
  return CODE.sub('', FENCE.sub('', text))


def slug(heading):
  """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
  text = re.sub(r'[`*_]|<[^>]+>', '', heading.strip().lower())
  text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
  return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(path):
  """The anchors of a page's headings, with GitHub's -1, -2 for repeated ones."""
  with open(path, encoding='utf-8') as handle:
    text = FENCE.sub('', handle.read())
  seen, result = {}, set()
  for heading in re.findall(r'^#{1,6}\s+(.+?)\s*#*\s*$', text, re.M):
    base = slug(heading)
    count = seen.get(base, 0)
    seen[base] = count + 1
    result.add(base if count == 0 else f'{base}-{count}')
  return result


def links(path):
  with open(path, encoding='utf-8') as handle:
    return LINK.findall(_prose(handle.read()))


def test_the_pages_are_found_and_link_somewhere():
  names = [os.path.relpath(p, ROOT) for p in PAGES]
  assert 'README.md' in names and 'docs/design.md' in names
  assert links(os.path.join(ROOT, 'README.md'))


def broken_links(page):
  """What is wrong with each relative link of a page, if anything."""
  broken = []
  for target in links(page):
    if re.match(r'^[a-z][a-z0-9+.-]*:', target):  # https:, mailto:, ...
      continue
    path, _, anchor = target.partition('#')
    resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
    if not os.path.exists(resolved):
      broken.append(f'{target}: no such file')
    elif anchor and resolved.endswith('.md') and anchor not in anchors(resolved):
      broken.append(f'{target}: no such heading in {os.path.basename(resolved)}')
  return broken


@pytest.mark.parametrize('page', PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_point_to_existing_files_and_headings(page):
  broken = broken_links(page)
  assert not broken, f'{os.path.relpath(page, ROOT)}: ' + '; '.join(broken)


def test_the_checker_finds_a_broken_file_and_a_broken_heading(tmp_path):
  page = tmp_path / 'page.md'
  (tmp_path / 'other.md').write_text('# Other\n', encoding='utf-8')
  page.write_text('# A title\n\n## Heading `two`, too\n\nSee [x](missing.md), [y](#heading-two-too),\n'
                  '[z](#nowhere), [o](other.md#other), [p](other.md#gone), [w](https://beam.apache.org)\n'
                  'and `[not a link](gone.md)`.\n\n```\n[code](gone.md)\n```\n',
                  encoding='utf-8')
  assert anchors(str(page)) == {'a-title', 'heading-two-too'}
  assert broken_links(str(page)) == ['missing.md: no such file',
                                     '#nowhere: no such heading in page.md',
                                     'other.md#gone: no such heading in other.md']
