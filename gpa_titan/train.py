"""``python -m gpa_titan.train --job.config_file C.toml [--section.key value ...]`` (see ``gpa_titan.titan.main``)."""

from gpa_titan.titan.main import main

if __name__ == "__main__":
    main()
