from libs.service_app import main
from services.gateway.app import definition

main(definition)
