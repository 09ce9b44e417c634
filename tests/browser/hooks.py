"""Read the stable hooks of a page's HTML with the standard library's parser."""
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Element:
    """One element: its tag, attributes, text (all descendants') and parent."""

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.text = ""

    def within(self, predicate):
        """Return whether an ancestor satisfies *predicate*."""
        node = self.parent
        while node is not None:
            if predicate(node):
                return True
            node = node.parent
        return False


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.stack = [], []

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.stack[-1] if self.stack else None)
        self.elements.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data):
        for element in self.stack:
            element.text += data


def parse(html):
    """Return every element of *html*, in document order."""
    collector = _Collector()
    collector.feed(html)
    return collector.elements


def having(elements, name, value=None):
    """Return the elements with attribute *name* (equal to *value* when given)."""
    return [e for e in elements if name in e.attrs and (value is None or e.attrs[name] == value)]
