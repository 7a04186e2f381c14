"""Several server processes share one adapters folder (`serve --workers N`, replicas on one
volume): each app here stands for one, with a finetunes store of its own on the same folder."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.app import AUTH, ClientFactory, lora_models
from tests.support.finetunes_api import create, finetunes_url


def test_a_name_is_taken_once_across_servers_sharing_the_folder(
    make_client: ClientFactory, adapters_dir: Path
) -> None:
    servers = [make_client(models=lora_models(), adapters_dir=adapters_dir) for _ in range(2)]

    def attempt(index: int) -> int:
        return int(create(servers[index % 2], "pirate").status_code)

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(attempt, range(24)))

    assert statuses.count(200) == 1, statuses
    assert set(statuses) == {200, 409}
    listed = servers[1].get(finetunes_url(), headers=AUTH)
    assert [entry["name"] for entry in listed.json()["result"]] == ["pirate"]
