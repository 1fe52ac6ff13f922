"""Issue 21: a model downloaded with the Train page's defaults (13.2 MB) is opened again in a real browser.

Before, the server's 10 MB upload limit made Chromium refuse it ("File must be 10.0MB or smaller")."""

from .conftest import open_page
from .test_flows import no_error_at_all, open_model_file
from tests.test_abuse import default_download


def test_the_default_download_opens_again_in_the_browser(page, server, tmp_path):
    path = tmp_path / "my-first-gpt.safetensors"
    path.write_bytes(default_download())
    assert path.stat().st_size > 10 * 2**20
    open_page(page, server, "next_token")
    open_model_file(page, path)  # waits until the picker shows it
    assert page.get_by_text("must be").count() == 0  # no size refusal from the uploader
    no_error_at_all(page)
