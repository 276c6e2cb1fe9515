"""Egress by name: an organization's secrets (`secrets`), what an environment given
some of them sees (`attached`: placeholders only) and the domain policy the egress
proxy enforces for it (`policy`: the only place values are decrypted)."""
