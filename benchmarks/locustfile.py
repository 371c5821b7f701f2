"""Locust's fastest client (FastHttpUser, geventhttpclient) in a closed loop: each user sends the
next request as soon as the previous answer is in, as infbench's closed-loop workers and wrk do."""

from locust import FastHttpUser, constant, task


class Closed(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/")
